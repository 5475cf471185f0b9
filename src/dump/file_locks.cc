#include "dump/file_locks.h"

#include <fcntl.h>
#include <sys/sysmacros.h>

#include "base/error.h"
#include "base/log.h"
#include "image/fdinfo.h"
#include "image/image.h"

namespace cryo::dump {
namespace {

// CRIU's file_lock_entry.flag values.
using image::kLockFlock;
using image::kLockOfd;
using image::kLockPosix;

// The kind as a user knows it, for messages.
std::string kind_name(const std::string& kind) {
  if (kind == "POSIX") return "POSIX (fcntl)";
  if (kind == "FLOCK") return "flock";
  if (kind == "OFDLCK") return "OFD";
  if (kind == "LEASE" || kind == "DELEG") return "lease";
  return kind;
}

std::string range_of(const proc::FileLock& l) {
  if (l.kind == "FLOCK") return "whole file";
  return l.end < 0 ? fmt::format("bytes {}..EOF", l.start)
                   : fmt::format("bytes {}..{}", l.start, l.end);
}

std::string describe(const proc::FileLock& l) {
  return fmt::format("{} {} lock ({})", kind_name(l.kind), l.type == "WRITE" ? "write" : "read",
                     range_of(l));
}

}  // namespace

void FileLockTable::note_fd(pid_t pid, int fd, uint32_t file_id, const std::string& path, dev_t dev,
                            ino_t ino, const std::vector<proc::FileLock>& locks) {
  inodes_.try_emplace({ino, dev}, Where{pid, fd, path});
  for (const proc::FileLock& l : locks) {
    if (l.kind == "LEASE" || l.kind == "DELEG")
      fail(
          "task {} fd {} ({}) holds a {} lease ({}): leases cannot be dumped; release it "
          "(fcntl F_SETLEASE F_UNLCK) before the dump",
          pid, fd, path, l.type == "WRITE" ? "write" : "read", l.mode);
    uint32_t flag = l.kind == "POSIX"    ? kLockPosix
                    : l.kind == "FLOCK"  ? kLockFlock
                    : l.kind == "OFDLCK" ? kLockOfd
                                         : 0;
    if (!flag)
      fail("task {} fd {} ({}) holds a lock of kind {}: cryo cannot restore it", pid, fd, path,
           l.kind);
    if (l.mode != "ADVISORY" || (l.type != "READ" && l.type != "WRITE"))
      fail(
          "task {} fd {} ({}) holds a {} lock {} {}: only advisory read and write locks can be "
          "dumped",
          pid, fd, path, kind_name(l.kind), l.mode, l.type);
    if (l.blocked)
      fail("task {} fd {} ({}) is waiting for a {}: a pending lock request cannot be dumped", pid,
           fd, path, describe(l));
    if (!enabled_)
      fail(
          "task {} fd {} ({}) holds a {}: dump with --file-locks (-l) to keep file locks "
          "(restore with -l too)",
          pid, fd, path, describe(l));

    uint32_t type = l.type == "WRITE" ? F_WRLCK : F_RDLCK;
    auto key = std::make_tuple(flag == kLockPosix ? pid : 0, file_id, flag, type, l.start, l.end);
    auto [it, added] = held_.try_emplace(key);
    Held& h = it->second;
    // An flock or OFD lock is the open file's: any task holding that file can take it again.
    // Prefer the one /proc shows as its taker, as the kernel will show the same one after.
    if (!added && !(flag == kLockFlock && l.pid == pid && h.e.pid() != pid)) continue;
    h.path = path;
    h.ino = l.ino;
    h.dev = makedev(l.dev_major, l.dev_minor);
    h.e.set_flag(flag);
    h.e.set_type(type);
    h.e.set_pid(pid);
    h.e.set_fd(fd);
    h.e.set_start(l.start);
    h.e.set_len(l.end < 0 ? 0 : l.end - l.start + 1);
    log::debug("task {} fd {} ({}): {}", pid, fd, path, describe(l));
  }
}

void FileLockTable::write(const std::string& dir, const std::function<bool(pid_t)>& in_tree,
                          const std::vector<proc::FileLock>& all) {
  for (const proc::FileLock& l : all) {
    if (l.pid <= 0 || !in_tree(l.pid)) continue;
    auto in = inodes_.find({l.ino, makedev(l.dev_major, l.dev_minor)});
    std::string file =
        in != inodes_.end()
            ? fmt::format("{} (fd {} of task {})", in->second.path, in->second.fd, in->second.pid)
            : fmt::format("inode {:02x}:{:02x}:{}", l.dev_major, l.dev_minor, l.ino);
    if (l.blocked)
      fail(
          "task {} is waiting for a {} on {}: a pending lock request cannot be dumped; dump "
          "when it holds the lock or gave up",
          l.pid, describe(l), file);
    if (l.kind != "POSIX") continue;  // flock/OFD: the open file may have left the tree
    int64_t len = l.end < 0 ? 0 : l.end - l.start + 1;
    bool seen = false;
    for (const auto& [key, h] : held_)
      seen |= h.e.flag() == kLockPosix && h.e.pid() == l.pid && h.ino == l.ino &&
              h.dev == makedev(l.dev_major, l.dev_minor) && h.e.start() == l.start &&
              h.e.len() == len;
    if (!seen && enabled_)
      fail("task {} holds a {} on {} that none of its fds shows: cryo cannot restore it", l.pid,
           describe(l), file);
    if (!seen)
      fail(
          "task {} holds a {} on {}: dump with --file-locks (-l) to keep file locks (restore "
          "with -l too)",
          l.pid, describe(l), file);
  }
  if (!enabled_) return;
  image::Writer w(dir, "file-locks.img", image::magic::kFileLocks);
  for (const auto& [key, h] : held_) {
    w.put(h.e);
    log::info("file lock: task {} fd {} ({}): flag {} type {} start {} len {}", h.e.pid(), h.e.fd(),
              h.path, h.e.flag(), h.e.type(), h.e.start(), h.e.len());
  }
  w.close();
}

}  // namespace cryo::dump
