#include "restore/file_locks.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <string>

#include "base/error.h"
#include "base/log.h"
#include "image/fdinfo.h"
#include "image/image.h"
#include "infect/scratch_arena.h"
#include "proc/proc.h"

namespace cryo::restore {
namespace {

// CRIU's file_lock_entry.flag values.
using image::kLockFlock;
using image::kLockOfd;
using image::kLockPosix;

std::string describe(const file_lock_entry& e) {
  const char* kind = e.flag() == kLockPosix   ? "POSIX (fcntl)"
                     : e.flag() == kLockFlock ? "flock"
                                              : "OFD";
  const char* type = e.type() == F_WRLCK ? "write" : "read";
  if (e.flag() == kLockFlock) return fmt::format("{} {} lock", kind, type);
  if (e.len() == 0) return fmt::format("{} {} lock (bytes {}..EOF)", kind, type, e.start());
  // Unsigned, so that a corrupt entry cannot overflow here.
  const uint64_t last = static_cast<uint64_t>(e.start()) + static_cast<uint64_t>(e.len()) - 1;
  return fmt::format("{} {} lock (bytes {}..{})", kind, type, e.start(), last);
}

// "process N (comm)"; a process that has exited may have left its open file to others.
std::string process(pid_t pid) {
  auto c = proc::try_read_file(fmt::format("/proc/{}/comm", pid));
  if (!c) return fmt::format("process {} (exited; another process still has its open file)", pid);
  while (!c->empty() && c->back() == '\n') c->pop_back();
  return fmt::format("process {} ({})", pid, *c);
}

// Who holds locks of `kind` on the file task `pid` has at `fd` now, from /proc/locks.
std::string holders(pid_t pid, uint64_t fd, const char* kind) {
  struct stat st;
  if (::stat(fmt::format("/proc/{}/fd/{}", pid, fd).c_str(), &st) < 0) return "unknown";
  std::string out;
  for (const proc::FileLock& l : proc::read_locks()) {
    if (l.blocked || l.kind != kind || l.ino != st.st_ino ||
        makedev(l.dev_major, l.dev_minor) != st.st_dev)
      continue;
    if (!out.empty()) out += ", ";
    out +=
        fmt::format("a {} lock taken by {}", l.type == "WRITE" ? "write" : "read", process(l.pid));
  }
  return out.empty() ? "unknown" : out;
}

}  // namespace

FileLocks::FileLocks(const Plan& plan, bool enabled) {
  if (!image::exists(plan.dir, "file-locks.img")) return;
  image::Reader r(plan.dir, "file-locks.img", image::magic::kFileLocks);
  file_lock_entry e;
  size_t n = 0;
  while (r.next(e)) {
    const pid_t pid = e.pid();
    int i = plan.find(pid);
    if (i < 0 || plan.tasks[i].zombie)
      fail(
          "image file-locks.img is corrupt: its {} belongs to task {}, not a live task of the tree",
          describe(e), pid);
    const auto& fds = plan.tasks[i].fds;
    if (std::none_of(fds.begin(), fds.end(), [&](const fdinfo_entry& f) {
          return f.fd() == static_cast<uint32_t>(e.fd());
        }))
      fail("image file-locks.img is corrupt: task {} has no fd {} for its {}", pid, e.fd(),
           describe(e));
    if ((e.flag() != kLockPosix && e.flag() != kLockFlock && e.flag() != kLockOfd) ||
        (e.type() != F_RDLCK && e.type() != F_WRLCK) || e.start() < 0 || e.len() < 0)
      fail(
          "image file-locks.img: task {} fd {} has a lock cryo cannot take (flag {}, type {}, "
          "start {}, len {})",
          pid, e.fd(), e.flag(), e.type(), e.start(), e.len());
    if (!enabled)
      fail(
          "the images hold file locks (task {} fd {}: {}): restore with --file-locks (-l) to "
          "take them again",
          pid, e.fd(), describe(e));
    by_pid_[pid].push_back(e);
    n++;
  }
  if (n) log::info("{} file lock(s) to take again", n);
}

void FileLocks::restore(RemoteTask& rt, const TaskPlan& t) const {
  auto it = by_pid_.find(t.pid());
  if (it == by_pid_.end()) return;
  const pid_t pid = t.pid();
  for (const file_lock_entry& e : it->second) {
    const uint64_t fd = static_cast<uint32_t>(e.fd());
    std::string path = proc::read_link(fmt::format("/proc/{}/fd/{}", pid, fd));
    if (e.flag() == kLockFlock) {
      // Non-blocking: a lock someone else took since the dump must fail the restore, not hang.
      const int cmd = (e.type() == F_WRLCK ? LOCK_EX : LOCK_SH) | LOCK_NB;
      SyscallResult r = rt.syscall(SYS_flock, fd, cmd);
      if (r.error() == EWOULDBLOCK)
        fail("task {} fd {}: cannot take its {} on {} again: held now by {}", pid, fd, describe(e),
             path, holders(pid, fd, "FLOCK"));
      r.or_fail("fd {}: cannot take its {} on {} again", fd, describe(e), path);
    } else {
      const bool ofd = e.flag() == kLockOfd;
      struct flock fl = {};
      fl.l_type = static_cast<short>(e.type());
      fl.l_whence = SEEK_SET;
      fl.l_start = e.start();
      fl.l_len = e.len();
      ScratchArena arena(rt);
      SyscallResult r = rt.syscall(SYS_fcntl, fd, ofd ? F_OFD_SETLK : F_SETLK, arena.put(fl));
      if (r.error() == EAGAIN || r.error() == EACCES) {
        // Ask the kernel, from the task, which lock is in the way.
        auto query = arena.put(fl);
        rt.check("fcntl(F_GETLK)", SYS_fcntl, fd, ofd ? F_OFD_GETLK : F_GETLK, query);
        const struct flock got = rt.read(query);
        if (got.l_type == F_UNLCK)
          fail(
              "task {} fd {}: cannot take its {} on {} again: a conflicting lock was held, and "
              "released meanwhile; restore again",
              pid, fd, describe(e), path);
        std::string range =
            got.l_len == 0 ? fmt::format("bytes {}..EOF", got.l_start)
                           : fmt::format("bytes {}..{}", got.l_start, got.l_start + got.l_len - 1);
        std::string who = got.l_pid > 0 ? process(got.l_pid)
                                        : std::string("an open file description (an OFD lock)");
        fail("task {} fd {}: cannot take its {} on {} again: {} holds a {} lock on {} now", pid, fd,
             describe(e), path, who, got.l_type == F_WRLCK ? "write" : "read", range);
      }
      r.or_fail("fd {}: cannot take its {} on {} again", fd, describe(e), path);
    }
    log::debug("task {} fd {} ({}): {} taken again", pid, fd, path, describe(e));
  }
}

}  // namespace cryo::restore
