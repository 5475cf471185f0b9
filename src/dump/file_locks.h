// File locks held by the dumped tree (-l/--file-locks): flock and OFD locks belong to an open
// file, POSIX locks to a process. Each is found through the "lock:" lines of
// /proc/PID/fdinfo/FD, which name the open file (and, for POSIX locks, only the owner's
// fds); /proc/locks is read once more at the end for what fdinfo cannot show.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "file-lock.pb.h"
#include "proc/proc.h"

namespace cryo::dump {

class FileLockTable {
 public:
  // Without `enabled` (no -l), any lock held by the tree is refused.
  explicit FileLockTable(bool enabled) : enabled_(enabled) {}
  // Fd `fd` of task `pid` is open file `file_id` on `path` (inode dev:ino); `locks` are the
  // lock lines of its fdinfo.
  void note_fd(pid_t pid, int fd, uint32_t file_id, const std::string& path, dev_t dev, ino_t ino,
               const std::vector<proc::FileLock>& locks);
  // Checks `all` (/proc/locks, read while the tree was frozen) for what the fds could not show
  // (a task of the tree waiting for a lock, a POSIX lock of a task on none of its fds) and,
  // with -l, writes file-locks.img.
  void write(const std::string& dir, const std::function<bool(pid_t)>& in_tree,
             const std::vector<proc::FileLock>& all);

 private:
  struct Held {
    file_lock_entry e;
    std::string path;
    uint64_t ino = 0;
    dev_t dev = 0;  // with ino: the file (inode numbers repeat across filesystems)
  };
  struct Where {
    pid_t pid;
    int fd;
    std::string path;
  };
  bool enabled_;
  // (POSIX owner or 0, file id, kind, type, start, end): one entry per lock, though every fd
  // of its open file shows it.
  std::map<std::tuple<pid_t, uint32_t, uint32_t, uint32_t, int64_t, int64_t>, Held> held_;
  std::map<std::pair<uint64_t, uint64_t>, Where> inodes_;  // (ino, dev) -> an fd on it
};

}  // namespace cryo::dump
