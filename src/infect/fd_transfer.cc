#include "infect/fd_transfer.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "base/error.h"
#include "kernel/syscalls.h"

namespace cryo {

Fd FdSource::steal(int fd, const char* what) {
  if (!pidfd_) {
    pidfd_.reset(kernel::pidfd_open(pid_));
    if (!pidfd_) fail_sys("task {}: cannot open a pidfd on it to copy its fds", pid_);
  }
  Fd copy(kernel::pidfd_getfd(pidfd_.get(), fd));
  if (!copy) fail_sys("task {} fd {}: cannot get a copy of its {}", pid_, fd, what);
  return copy;
}

Fd steal_fd(pid_t pid, int fd, const char* what) {
  return FdSource(pid).steal(fd, what);
}

FdInstaller::FdInstaller(RemoteTask& rt, uint64_t above) : rt_(rt) {
  const auto self = static_cast<uint64_t>(::getpid());
  long p = static_cast<long>(rt_.check("pidfd_open", SYS_pidfd_open, {self, 0}));
  const uint64_t want = std::max<uint64_t>(above, static_cast<uint64_t>(p));
  long moved = static_cast<long>(rt_.check("fcntl(F_DUPFD_CLOEXEC)", SYS_fcntl,
                                           {static_cast<uint64_t>(p), F_DUPFD_CLOEXEC, want}));
  if (moved != p) rt_.check("close", SYS_close, {static_cast<uint64_t>(p)});
  pidfd_ = static_cast<uint64_t>(moved);
  open_ = true;
}

FdInstaller::~FdInstaller() {
  if (!open_) return;
  try {
    close();
  } catch (const Error&) {
    // The task is being torn down with the failed restore.
  }
}

void FdInstaller::close() {
  if (!open_) return;
  open_ = false;
  rt_.check("close", SYS_close, {pidfd_});
}

uint64_t FdInstaller::take(int mine, const char* what) {
  long got = rt_.syscall(SYS_pidfd_getfd, {pidfd_, static_cast<uint64_t>(mine), 0});
  if (got < 0)
    fail_errno(static_cast<int>(-got), "task {}: cannot take {} from cryo", rt_.tid(), what);
  return static_cast<uint64_t>(got);
}

void FdInstaller::install(int mine, uint64_t target, bool cloexec, const char* what) {
  const uint64_t got = take(mine, what);
  if (got != target) {
    rt_.check("dup3", SYS_dup3, {got, target, cloexec ? static_cast<uint64_t>(O_CLOEXEC) : 0});
    rt_.check("close", SYS_close, {got});
  } else if (!cloexec) {
    rt_.check("fcntl(F_SETFD)", SYS_fcntl, {target, F_SETFD, 0});
  }
}

}  // namespace cryo
