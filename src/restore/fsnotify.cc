#include "restore/fsnotify.h"

#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "base/strings.h"
#include "restore/file_kind.h"

namespace cryo::restore {
namespace {

constexpr unsigned long kSetNextWd = _IOW('I', 0, int32_t);  // INOTIFY_IOC_SETNEXTWD
// What inotify_add_watch takes back from the mask fdinfo shows: the events, and the two
// flags the kernel keeps on the watch. IN_MASK_ADD, IN_ONLYDIR and IN_MASK_CREATE only act
// while a watch is added and are never shown.
constexpr uint32_t kWatchBits = IN_ALL_EVENTS | IN_ONESHOT | IN_EXCL_UNLINK;
constexpr int kMaxSkippedWds = 1 << 20;

void set_nonblock(int fd, uint32_t flags, const char* what, uint32_t id) {
  if (::fcntl(fd, F_SETFL, flags & O_NONBLOCK) < 0)
    fail_sys("cannot set the flags of {} {}", what, id);
}

}  // namespace

Fd open_inotify(const inotify_file_entry& e) {
  Fd fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!fd) fail_sys("cannot create inotify instance (file {})", e.id());
  std::vector<const inotify_wd_entry*> wds;
  for (const auto& w : e.wd()) wds.push_back(&w);
  std::sort(wds.begin(), wds.end(), [](auto* a, auto* b) { return a->wd() < b->wd(); });

  bool set_next = true;  // INOTIFY_IOC_SETNEXTWD (CONFIG_CHECKPOINT_RESTORE) works
  bool skipped = false;  // watches added and removed again: their IN_IGNORED events to drop
  int prev = 0;
  for (const inotify_wd_entry* w : wds) {
    const int want = static_cast<int>(w->wd());
    const std::string& path = w->f_handle().path();
    if (want <= prev)
      fail("image files.img is corrupt: inotify file {} has watch {} twice or out of range", e.id(),
           w->wd());
    if (path.empty())
      fail(
          "inotify file {} wd {}: the image holds no path for inode {:#x} (an image whose watches "
          "carry only file handles is not supported)",
          e.id(), want, w->i_ino());
    const uint32_t mask = w->mask() & kWatchBits;
    if (mask != w->mask())
      log::debug("inotify file {} wd {}: mask {:#x} restored as {:#x}", e.id(), want, w->mask(),
                 mask);
    if (set_next && ::ioctl(fd.get(), kSetNextWd, want) < 0) {
      if (errno != ENOTTY && errno != EPERM)
        fail_sys("inotify file {}: cannot set the next watch number to {}", e.id(), want);
      log::info(
          "inotify: INOTIFY_IOC_SETNEXTWD is not available; numbering watches by adding "
          "and removing them");
      set_next = false;
    }
    // The path names the watched inode itself, never a symlink to follow.
    int got = -1;
    for (int tries = 0;; tries++) {
      got = ::inotify_add_watch(fd.get(), path.c_str(), mask | IN_DONT_FOLLOW);
      if (got < 0)
        fail_sys("inotify file {}: cannot watch {} again (wd {}, mask {:#x})", e.id(),
                 printable(path), want, mask);
      if (got >= want || got <= prev || set_next) break;
      // The kernel hands out wds in increasing order and does not reuse a removed one soon:
      // a watch added and removed again uses up a number.
      if (tries >= kMaxSkippedWds)
        fail("inotify file {}: wd {} is too far away to reach by adding watches", e.id(), want);
      if (::inotify_rm_watch(fd.get(), got) < 0)
        fail_sys("inotify file {}: cannot remove the stand-in watch {}", e.id(), got);
      skipped = true;
    }
    if (got != want)
      fail(
          "inotify file {}: watching {} again gave wd {} instead of {}{}", e.id(), path, got, want,
          got <= prev ? " (the path leads to an inode an earlier watch of this instance has)" : "");
    log::debug("inotify file {}: wd {} mask {:#x} on {}", e.id(), want, mask, printable(path));
    prev = want;
  }
  if (skipped) {
    // The stand-in watches queued IN_IGNORED events; the task must not read them. Anything
    // else read here happened while the tree was not running, like any event during the dump.
    char buf[4096];
    while (::read(fd.get(), buf, sizeof buf) > 0) {
    }
  }
  set_nonblock(fd.get(), e.flags(), "inotify instance", e.id());
  return fd;
}

Fd open_fanotify(const fanotify_file_entry& e) {
  // The group keeps its init flags (fdinfo shows them): create it with the same ones. Its
  // O_NONBLOCK may have changed since and is set below; close-on-exec is per fd.
  Fd fd(::fanotify_init(e.faflags(), e.evflags()));
  if (!fd)
    fail_sys("cannot create fanotify group (file {}, flags {:#x}, event flags {:#x})", e.id(),
             e.faflags(), e.evflags());
  if (::fcntl(fd.get(), F_SETFD, FD_CLOEXEC) < 0)
    fail_sys("cannot set close-on-exec on fanotify group {}", e.id());
  for (const fanotify_mark_entry& m : e.mark()) {
    std::string path;
    unsigned kind = 0;
    if (m.type() == INODE && m.has_ie()) {
      path = m.ie().f_handle().path();
      if (path.empty())
        fail("fanotify file {}: the image holds no path for the marked inode {:#x}", e.id(),
             m.ie().i_ino());
    } else if (m.type() == MOUNT && m.has_me() && !m.me().path().empty()) {
      path = m.me().path();
      kind = FAN_MARK_MOUNT;
    } else {
      fail("image files.img is corrupt: fanotify file {} has a mark of type {} without its target",
           e.id(), static_cast<int>(m.type()));
    }
    const unsigned keep = kind | FAN_MARK_DONT_FOLLOW | (m.mflags() & FAN_MARK_EVICTABLE);
    if (m.mask() &&
        ::fanotify_mark(fd.get(), FAN_MARK_ADD | keep, m.mask(), AT_FDCWD, path.c_str()) < 0)
      fail_sys("fanotify file {}: cannot mark {} again with mask {:#x}", e.id(), printable(path),
               m.mask());
    if (m.ignored_mask()) {
      const unsigned how = (m.mflags() & FAN_MARK_IGNORE) ? FAN_MARK_IGNORE : FAN_MARK_IGNORED_MASK;
      if (::fanotify_mark(fd.get(),
                          FAN_MARK_ADD | keep | how | (m.mflags() & FAN_MARK_IGNORED_SURV_MODIFY),
                          m.ignored_mask(), AT_FDCWD, path.c_str()) < 0)
        fail_sys("fanotify file {}: cannot mark {} again with ignored mask {:#x}", e.id(),
                 printable(path), m.ignored_mask());
    }
    log::debug("fanotify file {}: mark {:#x}/{:#x} flags {:#x} on {}", e.id(), m.mask(),
               m.ignored_mask(), m.mflags(), path);
  }
  set_nonblock(fd.get(), e.flags(), "fanotify group", e.id());
  return fd;
}

namespace {

class InotifyKind : public FileKind {
 public:
  fd_types type() const override { return INOTIFY; }
  Fd open(const file_entry& f, FileSet&) override { return open_inotify(f.ify()); }
};

class FanotifyKind : public FileKind {
 public:
  fd_types type() const override { return FANOTIFY; }
  Fd open(const file_entry& f, FileSet&) override { return open_fanotify(f.ffy()); }
};

}  // namespace

std::unique_ptr<FileKind> make_inotify_kind() {
  return std::make_unique<InotifyKind>();
}
std::unique_ptr<FileKind> make_fanotify_kind() {
  return std::make_unique<FanotifyKind>();
}

}  // namespace cryo::restore
