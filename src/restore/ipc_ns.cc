#include "restore/ipc_ns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "image/ipc_var.h"
#include "kernel/namespace.h"
#include "kernel/sysv_ipc.h"

namespace cryo::restore {
namespace {

constexpr const char* kRedo = "corrupt or edited images: dump the tree again";
constexpr uint32_t kSemValueMax = 32767;  // SEMVMX
constexpr uint32_t kSemsMax = 32000;      // SEMMSL's largest
constexpr const char* kSemNextId = "/proc/sys/kernel/sem_next_id";
constexpr const char* kMsgNextId = "/proc/sys/kernel/msg_next_id";
constexpr const char* kMsgMax = "/proc/sys/kernel/msgmax";
constexpr const char* kMsgMnb = "/proc/sys/kernel/msgmnb";

// semctl's fourth argument, which the caller defines.
union semun {
  int val;
  struct semid_ds* buf;
  unsigned short* array;
};

void check_desc(const std::string& what, const ipc_desc_entry& d) {
  if (d.id() > INT32_MAX) fail("{}: the id is out of range: {}", what, kRedo);
  if (d.mode() & ~0777u) fail("{}: mode {:o} has unknown bits: {}", what, d.mode(), kRedo);
}

std::string describe(const ipc_desc_entry& d) {
  return fmt::format("key {:#x}, mode {:o}, owner {}:{}, creator {}:{}", d.key(), d.mode(), d.uid(),
                     d.gid(), d.cuid(), d.cgid());
}

// Makes the object `d` describes with its id, its creator's credentials and its key.
int make_object(const char* kind, const char* next_id, const ipc_desc_entry& d,
                const std::function<int(key_t, int)>& get) {
  kernel::set_next_id(next_id, d.id());
  const int flags = static_cast<int>(d.mode() & 0777) | IPC_CREAT | IPC_EXCL;
  const int got = kernel::create_as(d.cuid(), d.cgid(),
                                    [&] { return get(static_cast<key_t>(d.key()), flags); });
  if (got < 0) fail_errno(-got, "cannot make SysV {} {} ({}) again", kind, d.id(), describe(d));
  if (static_cast<uint32_t>(got) != d.id())
    fail("cannot make SysV {} {} again: it got id {}", kind, d.id(), got);
  return got;
}

}  // namespace

void write_ipc_sysctl(const char* path, const std::string& value) {
  Fd fd(::open(path, O_WRONLY | O_CLOEXEC));
  if (!fd) fail_sys("cannot open {} to restore an IPC namespace's settings", path);
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
    fail_sys("cannot write \"{}\" to {} (an IPC namespace's setting)", value, path);
}

IpcNamespace::IpcNamespace(const std::string& dir, uint32_t id, bool root) : id_(id) {
  const std::string name = fmt::format("ipcns-var-{}.img", id);
  image::read_one(dir, name, image::magic::kIpcVar, vars_);
  if (vars_.sem_ctls_size() != image::kSemCtls)
    fail("image {}: {} kernel.sem values, not {}: {}", name, vars_.sem_ctls_size(), image::kSemCtls,
         kRedo);
  const std::string shm = fmt::format("ipcns-shm-{}.img", id);
  has_shm_ = image::exists(dir, shm);
  if (has_shm_ && !root)
    fail(
        "image {}: shared memory segments of an IPC namespace the root task is not in are not "
        "supported yet",
        shm);
  load_sems(dir);
  load_msgs(dir);
}

void IpcNamespace::load_sems(const std::string& dir) {
  const std::string name = fmt::format("ipcns-sem-{}.img", id_);
  if (!image::exists(dir, name)) return;
  image::Reader r(dir, name, image::magic::kIpcnsSem);
  for (ipc_sem_entry e; r.next(e);) {
    const std::string what = fmt::format("image {}: semaphore set {}", name, e.desc().id());
    check_desc(what, e.desc());
    if (e.nsems() == 0 || e.nsems() > kSemsMax)
      fail("{}: {} semaphores: {}", what, e.nsems(), kRedo);
    SemSet s{e, std::vector<uint16_t>(e.nsems())};
    const size_t n = e.nsems() * sizeof(uint16_t);
    std::memcpy(s.values.data(), r.take_raw(n).data(), n);
    r.take_raw((8 - n % 8) % 8);
    for (uint16_t v : s.values)
      if (v > kSemValueMax) fail("{}: value {} is above {}: {}", what, v, kSemValueMax, kRedo);
    sems_.push_back(std::move(s));
  }
}

void IpcNamespace::load_msgs(const std::string& dir) {
  const std::string name = fmt::format("ipcns-msg-{}.img", id_);
  if (!image::exists(dir, name)) return;
  msg_image_.emplace(dir, name, image::magic::kIpcnsMsg);
  image::Reader& r = *msg_image_;
  for (ipc_msg_entry e; r.next(e);) {
    const std::string what = fmt::format("image {}: message queue {}", name, e.desc().id());
    check_desc(what, e.desc());
    if (e.qbytes() > INT_MAX) fail("{}: {} bytes allowed: {}", what, e.qbytes(), kRedo);
    Queue q{e, {}};
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < e.qnum(); i++) {
      ipc_msg m;
      if (!r.next(m)) fail("{}: {} of its {} messages: {}", what, i, e.qnum(), kRedo);
      bytes += m.msize();
      if (m.mtype() == 0 || m.mtype() > LONG_MAX || bytes > e.qbytes())
        fail("{}: message {} (type {}, {} bytes) does not fit the queue: {}", what, i, m.mtype(),
             m.msize(), kRedo);
      q.messages.push_back({static_cast<long>(m.mtype()), r.take_raw(m.msize())});
      r.take_raw((8 - m.msize() % 8) % 8);
    }
    queues_.push_back(std::move(q));
  }
}

void IpcNamespace::make_sems() const {
  for (const SemSet& s : sems_) {
    const ipc_desc_entry& d = s.e.desc();
    const int id = make_object("semaphore set", kSemNextId, d, [&](key_t key, int flags) {
      return ::semget(key, static_cast<int>(s.values.size()), flags);
    });
    std::vector<unsigned short> values(s.values.begin(), s.values.end());
    semun arg{};
    arg.array = values.data();
    if (::semctl(id, 0, SETALL, arg) < 0)
      fail_sys("cannot set the values of SysV semaphore set {}", id);
    struct semid_ds ds {};
    arg.buf = &ds;
    if (::semctl(id, 0, IPC_STAT, arg) < 0) fail_sys("cannot read SysV semaphore set {}", id);
    ds.sem_perm.uid = d.uid();
    ds.sem_perm.gid = d.gid();
    ds.sem_perm.mode = static_cast<unsigned short>(d.mode());
    if (::semctl(id, 0, IPC_SET, arg) < 0)
      fail_sys("cannot set the owner and mode of SysV semaphore set {} ({})", id, describe(d));
    log::info("SysV semaphore set {} made again ({}, {} semaphores)", id, describe(d),
              values.size());
  }
}

void IpcNamespace::make_queues() const {
  // The namespace's settings come after: msgmax, raised if a message needs it, and msgmnb,
  // set to each queue's size while it is made (raising a queue's size past msgmnb would need
  // CAP_SYS_RESOURCE).
  size_t longest = 0;
  for (const Queue& q : queues_)
    for (const Message& m : q.messages) longest = std::max(longest, m.text.size());
  if (!queues_.empty() && longest > 8192) write_ipc_sysctl(kMsgMax, std::to_string(longest));
  std::vector<char> buf;
  for (const Queue& q : queues_) {
    const ipc_desc_entry& d = q.e.desc();
    write_ipc_sysctl(kMsgMnb, std::to_string(q.e.qbytes()));
    const int id = make_object("message queue", kMsgNextId, d,
                               [](key_t key, int flags) { return ::msgget(key, flags); });
    for (const Message& m : q.messages) {
      buf.resize(sizeof(long) + m.text.size());
      std::memcpy(buf.data(), &m.type, sizeof(long));
      std::memcpy(buf.data() + sizeof(long), m.text.data(), m.text.size());
      if (::msgsnd(id, buf.data(), m.text.size(), IPC_NOWAIT) < 0)
        fail_sys("cannot put a message (type {}, {} bytes) back in SysV message queue {}", m.type,
                 m.text.size(), id);
    }
    struct msqid_ds ds {};
    if (::msgctl(id, IPC_STAT, &ds) < 0) fail_sys("cannot read SysV message queue {}", id);
    ds.msg_perm.uid = d.uid();
    ds.msg_perm.gid = d.gid();
    ds.msg_perm.mode = static_cast<unsigned short>(d.mode());
    if (::msgctl(id, IPC_SET, &ds) < 0)
      fail_sys("cannot set the owner and mode of SysV message queue {} ({})", id, describe(d));
    log::info("SysV message queue {} made again ({}, {} messages)", id, describe(d),
              q.messages.size());
  }
}

void IpcNamespace::fill(pid_t pid) const {
  kernel::in_namespace(fmt::format("/proc/{}/ns/ipc", pid), CLONE_NEWIPC, [&] {
    make_sems();
    make_queues();
    std::string sem;
    for (uint32_t v : vars_.sem_ctls()) sem += fmt::format("{}{}", sem.empty() ? "" : " ", v);
    write_ipc_sysctl(image::kSemSysctl, sem);
    for (const image::IpcSysctl& s : image::kIpcSysctls)
      if (s.has(vars_) && !(has_shm_ && s.path == image::kShmRmidForced))
        write_ipc_sysctl(s.path, std::to_string(s.get(vars_)));
  });
  log::debug("task {}: IPC namespace {} has its objects and settings", pid, id_);
}

}  // namespace cryo::restore
