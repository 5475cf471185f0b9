#include "kernel/sysv_ipc.h"

#include <fcntl.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <thread>

#include "base/error.h"
#include "base/fd.h"
#include "kernel/syscalls.h"

namespace cryo::kernel {

AttachedSegment::AttachedSegment(uint32_t id, bool read_only)
    : p_(::shmat(static_cast<int>(id), nullptr, read_only ? SHM_RDONLY : 0)) {
  if (p_ == reinterpret_cast<void*>(-1))
    fail_sys("cannot attach SysV shared memory segment {} in cryo", id);
  struct shmid_ds ds {};
  if (::shmctl(static_cast<int>(id), IPC_STAT, &ds) < 0) {
    const int err = errno;
    ::shmdt(p_);
    fail_errno(err, "cannot read the state of SysV shared memory segment {}", id);
  }
  const auto at = reinterpret_cast<uint64_t>(p_);
  file_ = fmt::format("/proc/self/map_files/{:x}-{:x}", at, at + page_up(ds.shm_segsz));
}

AttachedSegment::~AttachedSegment() {
  ::shmdt(p_);
}

int create_as(uint32_t uid, uint32_t gid, const std::function<int()>& get) {
  int result = 0;
  std::thread t([&] {
    if (::syscall(SYS_setresgid, gid, gid, gid) < 0 || ::syscall(SYS_setresuid, uid, uid, uid) < 0)
      result = -errno;
    else if ((result = get()) < 0)
      result = -errno;
  });
  t.join();
  return result;
}

void set_next_id(const char* path, long id) {
  Fd fd(::open(path, O_WRONLY | O_CLOEXEC));
  std::string s = std::to_string(id);
  if (!fd || ::write(fd.get(), s.data(), s.size()) != static_cast<ssize_t>(s.size()))
    fail_sys(
        "cannot choose the id of a new SysV object ({} {}; the kernel needs "
        "CONFIG_CHECKPOINT_RESTORE)",
        path, s);
}

}  // namespace cryo::kernel
