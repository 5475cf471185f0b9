#include "dump/ipc_ns.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "image/image.h"
#include "image/ipc_var.h"
#include "kernel/namespace.h"
#include "proc/proc.h"

namespace cryo::dump {
namespace {

std::vector<uint64_t> read_numbers(const std::string& path) {
  const std::string text = proc::read_file(path);
  std::vector<uint64_t> out;
  const char* p = text.c_str();
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == '\n') p++;
    if (!*p) break;
    char* end;
    out.push_back(std::strtoull(p, &end, 10));
    if (end == p) fail("{}: cannot parse \"{}\"", path, text);
    p = end;
  }
  return out;
}

ipc_var_entry read_vars() {
  ipc_var_entry e;
  const std::vector<uint64_t> sem = read_numbers(image::kSemSysctl);
  if (sem.size() != image::kSemCtls)
    fail("{}: {} numbers, not {}", image::kSemSysctl, sem.size(), image::kSemCtls);
  for (uint64_t v : sem) e.add_sem_ctls(static_cast<uint32_t>(v));
  for (const image::IpcSysctl& s : image::kIpcSysctls) {
    const std::vector<uint64_t> v = read_numbers(s.path);
    if (v.size() != 1) fail("{}: {} numbers, not one", s.path, v.size());
    s.set(e, v[0]);
  }
  return e;
}

// The names of the POSIX message queues of the calling thread's IPC namespace, from a mount of
// its mqueue file system that no mount namespace shows.
std::vector<std::string> mqueue_names() {
  Fd fs(::fsopen("mqueue", FSOPEN_CLOEXEC));
  if (!fs) fail_sys("cannot open the mqueue file system (fsopen)");
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0)
    fail_sys("cannot make an mqueue file system (fsconfig)");
  Fd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, 0));
  if (!mnt) fail_sys("cannot mount the mqueue file system (fsmount)");
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator(fmt::format("/proc/self/fd/{}", mnt.get()), ec))
    names.push_back(e.path().filename());
  if (ec) fail("cannot list the POSIX message queues: {}", ec.message());
  return names;
}

}  // namespace

IpcNamespace::IpcNamespace(pid_t pid, uint64_t ino, uint32_t id) : pid_(pid), ino_(ino), id_(id) {
  struct shm_info shm {};
  struct msginfo msg {};
  struct seminfo sem {};
  std::vector<std::string> queues;
  kernel::in_namespace(fmt::format("/proc/{}/ns/ipc", pid), CLONE_NEWIPC, [&] {
    vars_ = read_vars();
    if (::shmctl(0, SHM_INFO, reinterpret_cast<struct shmid_ds*>(&shm)) < 0)
      fail_sys("cannot count the SysV shared memory segments (SHM_INFO)");
    if (::msgctl(0, MSG_INFO, reinterpret_cast<struct msqid_ds*>(&msg)) < 0)
      fail_sys("cannot count the SysV message queues (MSG_INFO)");
    if (::semctl(0, 0, SEM_INFO, &sem) < 0)
      fail_sys("cannot count the SysV semaphore sets (SEM_INFO)");
    queues = mqueue_names();
  });
  const std::string where = fmt::format("task {}'s IPC namespace ipc:[{}]", pid, ino);
  if (shm.used_ids || msg.msgpool || sem.semusz)
    fail(
        "{} holds {} SysV shared memory segment(s), {} message queue(s) and {} semaphore "
        "set(s): SysV objects in an IPC namespace of the tree are not supported yet; remove "
        "them (ipcs, ipcrm) or dump a tree that shares cryo's IPC namespace",
        where, shm.used_ids, msg.msgpool, sem.semusz);
  if (!queues.empty())
    fail(
        "{} holds {} POSIX message queue(s) (/{} ...): POSIX message queues are not supported "
        "yet; remove them (mq_unlink) or dump a tree that shares cryo's IPC namespace",
        where, queues.size(), queues.front());
  log::info("IPC namespace ipc:[{}] (id {}) of task {}: no objects", ino, id, pid);
}

void IpcNamespace::write(const std::string& dir) const {
  image::write_one(dir, fmt::format("ipcns-var-{}.img", id_), image::magic::kIpcVar, vars_);
  log::debug("IPC namespace ipc:[{}] of task {}: sysctls written (id {})", ino_, pid_, id_);
}

}  // namespace cryo::dump
