// Moving open files between cryo and the tasks it works on. Dump takes a copy of a task's
// open file (pidfd_getfd: the same open file, not a reopen); restore makes a task take one of
// cryo's files at a chosen fd number. Either way the file stays one open file, with one
// offset and one set of status flags, wherever it is held.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "base/fd.h"
#include "infect/remote_task.h"

namespace cryo {

// Copies of the open files of one task, through one pidfd on it, and its /proc directories
// about them (each opened once: a name looked up in them costs one step, not four).
class FdSource {
 public:
  explicit FdSource(pid_t pid) : pid_(pid) {}
  // cryo's copy of the task's fd `fd`; throws naming the task, the fd and `what`.
  Fd steal(int fd, const char* what = "file");
  pid_t pid() const { return pid_; }
  // /proc/PID/fd and /proc/PID/fdinfo, opened on first use; throw naming the task.
  int fd_dir() { return dir(fd_dir_, "fd"); }
  int fdinfo_dir() { return dir(fdinfo_dir_, "fdinfo"); }
  // Opens all the above now: from then on, threads may share the source.
  void open_all();

 private:
  int dir(Fd& d, const char* name);
  pid_t pid_;
  Fd pidfd_, fd_dir_, fdinfo_dir_;
};

// A copy of fd `fd` of task `pid` (one-off: opens a pidfd for it).
Fd steal_fd(pid_t pid, int fd, const char* what = "file");

// Installs cryo's open files into a stopped task `rt`, which takes them with pidfd_getfd
// through a pidfd on cryo that it holds at a number at or above `above` (so that numbers
// below stay free for the files). The pidfd is closed in the task by close() or at the end.
class FdInstaller {
 public:
  FdInstaller(RemoteTask& rt, uint64_t above);
  ~FdInstaller();
  FdInstaller(const FdInstaller&) = delete;
  FdInstaller& operator=(const FdInstaller&) = delete;
  // The task takes cryo's fd `mine`; returns the number it got (the lowest free one).
  // `what` names the file in errors.
  uint64_t take(int mine, std::string_view what);
  // Where one of cryo's files goes in the task.
  struct Placement {
    uint64_t target;  // the fd number, below the pidfd's
    int mine;         // cryo's fd
    bool cloexec;
  };
  // Installs every file of `all` (sorted by target, no number twice) into a task whose
  // numbers below the pidfd's are all free, in batches: see fd_transfer.cc.
  void install_all(const std::vector<Placement>& all);
  // The number of the task's pidfd on cryo: fd numbers above it are free for moving aside.
  uint64_t pidfd() const { return pidfd_; }
  void close();

 private:
  uint64_t receive_self_pidfd();
  RemoteTask& rt_;
  uint64_t pidfd_ = 0;
  bool open_ = false;
};

}  // namespace cryo
