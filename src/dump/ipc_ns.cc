#include "dump/ipc_ns.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "image/image.h"
#include "image/ipc_var.h"
#include "kernel/namespace.h"
#include "proc/proc.h"

namespace cryo::dump {
namespace {

// semctl's fourth argument, which the caller defines.
union semun {
  int val;
  struct semid_ds* buf;
  unsigned short* array;
};

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

ipc_desc_entry desc_of(const struct ipc_perm& p, int id) {
  ipc_desc_entry d;
  d.set_key(static_cast<uint32_t>(p.__key));
  d.set_uid(p.uid);
  d.set_gid(p.gid);
  d.set_cuid(p.cuid);
  d.set_cgid(p.cgid);
  d.set_mode(p.mode);
  d.set_id(static_cast<uint32_t>(id));
  return d;
}

// Calls stat(index, ...) for every index up to `max` (the highest in use, from *_INFO): the
// ids of the objects of one kind. A gap or an object removed meanwhile answers EINVAL/EIDRM.
template <typename Stat>
void each_object(int max, const char* kind, Stat stat) {
  for (int idx = 0; idx <= max; idx++)
    if (stat(idx) < 0 && errno != EINVAL && errno != EIDRM)
      fail_sys("cannot read the SysV {} at index {}", kind, idx);
}

}  // namespace

IpcNamespace::IpcNamespace(pid_t pid, uint64_t ino, uint32_t id, bool root)
    : pid_(pid), ino_(ino), id_(id) {
  std::vector<std::string> mqueues;
  run([&] {
    vars_ = read_vars();
    struct shm_info shm {};
    const int shm_max = ::shmctl(0, SHM_INFO, reinterpret_cast<struct shmid_ds*>(&shm));
    if (shm_max < 0) fail_sys("cannot list the SysV shared memory segments (SHM_INFO)");
    each_object(shm_max, "shared memory segment", [&](int idx) {
      struct shmid_ds ds {};
      const int got = ::shmctl(idx, SHM_STAT, &ds);
      if (got < 0) return got;
      // Such a segment lives as long as its creator; the restored one's creator is a thread
      // of cryo's that is gone.
      if (vars_.shm_rmid_forced() && ds.shm_nattch == 0)
        fail(
            "task {}'s IPC namespace ipc:[{}]: SysV shared memory segment {} is attached by no "
            "process while kernel.shm_rmid_forced is 1: a restore would lose it; not supported",
            pid, ino, got);
      shm_.push_back(static_cast<uint32_t>(got));
      return got;
    });

    struct seminfo si {};
    const int sem_max = ::semctl(0, 0, SEM_INFO, &si);
    if (sem_max < 0) fail_sys("cannot list the SysV semaphore sets (SEM_INFO)");
    each_object(sem_max, "semaphore set", [&](int idx) {
      struct semid_ds ds {};
      semun arg{};
      arg.buf = &ds;
      const int got = ::semctl(idx, 0, SEM_STAT, arg);
      if (got < 0) return got;
      SemSet s;
      *s.e.mutable_desc() = desc_of(ds.sem_perm, got);
      s.e.set_nsems(static_cast<uint32_t>(ds.sem_nsems));
      s.values.resize(ds.sem_nsems);
      arg.array = s.values.data();
      if (::semctl(got, 0, GETALL, arg) < 0)
        fail_sys("cannot read the values of SysV semaphore set {}", got);
      sems_.push_back(std::move(s));
      return got;
    });

    struct msginfo mi {};
    const int msg_max = ::msgctl(0, MSG_INFO, reinterpret_cast<struct msqid_ds*>(&mi));
    if (msg_max < 0) fail_sys("cannot list the SysV message queues (MSG_INFO)");
    each_object(msg_max, "message queue", [&](int idx) {
      struct msqid_ds ds {};
      const int got = ::msgctl(idx, MSG_STAT, &ds);
      if (got < 0) return got;
      Queue q;
      *q.e.mutable_desc() = desc_of(ds.msg_perm, got);
      q.e.set_qbytes(static_cast<uint32_t>(ds.msg_qbytes));
      q.e.set_qnum(static_cast<uint32_t>(ds.msg_qnum));
      // No message is longer than all of them; MSG_COPY reads message i without taking it.
      std::vector<char> buf(sizeof(long) + ds.__msg_cbytes + 1);
      for (msgqnum_t i = 0; i < ds.msg_qnum; i++) {
        const ssize_t n =
            ::msgrcv(got, buf.data(), ds.__msg_cbytes, static_cast<long>(i), IPC_NOWAIT | MSG_COPY);
        if (n < 0) fail_sys("cannot read message {} of SysV message queue {} (MSG_COPY)", i, got);
        Message m;
        long type;
        std::memcpy(&type, buf.data(), sizeof type);
        m.m.set_mtype(static_cast<uint64_t>(type));
        m.m.set_msize(static_cast<uint32_t>(n));
        m.text.assign(buf.data() + sizeof(long), static_cast<size_t>(n));
        q.messages.push_back(std::move(m));
      }
      queues_.push_back(std::move(q));
      return got;
    });
    mqueues = mqueue_names();
  });
  const std::string where = fmt::format("task {}'s IPC namespace ipc:[{}]", pid, ino);
  if (!shm_.empty() && !root)
    fail(
        "{} holds {} SysV shared memory segment(s): segments of an IPC namespace the root task "
        "is not in are not supported yet",
        where, shm_.size());
  if (!mqueues.empty())
    fail(
        "{} holds {} POSIX message queue(s) (/{} ...): POSIX message queues are not supported "
        "yet; remove them (mq_unlink) or dump a tree that shares cryo's IPC namespace",
        where, mqueues.size(), mqueues.front());
  log::info(
      "IPC namespace ipc:[{}] (id {}) of task {}: {} shared memory segment(s), {} semaphore "
      "set(s), {} message queue(s)",
      ino, id, pid, shm_.size(), sems_.size(), queues_.size());
}

void IpcNamespace::run(const std::function<void()>& fn) const {
  kernel::in_namespace(fmt::format("/proc/{}/ns/ipc", pid_), CLONE_NEWIPC, fn);
}

void IpcNamespace::write(const std::string& dir) const {
  image::write_one(dir, fmt::format("ipcns-var-{}.img", id_), image::magic::kIpcVar, vars_);
  static const char kZeros[8] = {};
  if (!sems_.empty()) {
    image::Writer w(dir, fmt::format("ipcns-sem-{}.img", id_), image::magic::kIpcnsSem);
    for (const SemSet& s : sems_) {
      w.put(s.e);
      const size_t n = s.values.size() * sizeof(uint16_t);
      w.put_raw(s.values.data(), n);
      w.put_raw(kZeros, (8 - n % 8) % 8);
    }
    w.close();
  }
  if (!queues_.empty()) {
    image::Writer w(dir, fmt::format("ipcns-msg-{}.img", id_), image::magic::kIpcnsMsg);
    for (const Queue& q : queues_) {
      w.put(q.e);
      for (const Message& m : q.messages) {
        w.put(m.m);
        w.put_raw(m.text.data(), m.text.size());
        w.put_raw(kZeros, (8 - m.text.size() % 8) % 8);
      }
    }
    w.close();
  }
  log::debug("IPC namespace ipc:[{}] of task {}: written (id {})", ino_, pid_, id_);
}

}  // namespace cryo::dump
