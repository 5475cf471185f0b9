#include "restore/files.h"

#include "restore/event_files.h"
#include "restore/fsnotify.h"
#include "restore/inet.h"
#include "restore/shmem.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "base/error.h"
#include "base/log.h"
#include "base/strings.h"
#include "image/image.h"
#include "kernel/syscalls.h"
#include "pagemap.pb.h"

namespace cryo::restore {

// The planner refuses data known not to fit; this is for what it cannot know (e.g. a pipe
// kept small by the user's pipe-user-pages limits).
void put_pipe_data(int fd, const std::string& data, uint32_t pipe_id) {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    fail_sys("cannot make pipe {} non-blocking", pipe_id);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      int size = ::fcntl(fd, F_GETPIPE_SZ);
      fail(
          "pipe {} takes only {} of its {} saved bytes here (its size is {} bytes): its data "
          "cannot go back",
          pipe_id, off, data.size(), size);
    }
    if (n <= 0) fail_sys("cannot put the saved data back into pipe {}", pipe_id);
    off += static_cast<size_t>(n);
  }
}

Fd open_checked(const std::string& path, uint32_t flags, bool has_mode, uint32_t mode,
                const std::string& what) {
  flags &= ~static_cast<uint32_t>(O_CREAT | O_EXCL | O_TRUNC);
  Fd fd(::open(path.c_str(), static_cast<int>(flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)));
  struct stat st;
  if (!fd) {
    int err = errno;
    // A FIFO opened for writing without a reader says ENXIO when non-blocking.
    if (err == ENXIO && ::stat(path.c_str(), &st) == 0 && has_mode &&
        (st.st_mode & S_IFMT) != (mode & S_IFMT))
      fail("{}: {} is now {}, it was {} when dumped: restore needs the same file", what,
           printable(path), file_kind(st.st_mode), file_kind(mode));
    fail_errno(err, "{}: cannot open {}", what, printable(path));
  }
  if (::fstat(fd.get(), &st) < 0) fail_sys("{}: cannot stat {}", what, printable(path));
  const bool fifo_ok = !has_mode && !S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode);
  if (has_mode ? (st.st_mode & S_IFMT) != (mode & S_IFMT) : !fifo_ok)
    fail("{}: {} is now {}, it was {} when dumped: restore needs the same file", what,
         printable(path), file_kind(st.st_mode),
         has_mode ? file_kind(mode) : "not a FIFO or socket");
  // (An O_PATH file has no status flags to change.)
  if (!(flags & (O_NONBLOCK | O_PATH))) {
    int fl = ::fcntl(fd.get(), F_GETFL);
    if (fl < 0 || ::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK) < 0)
      fail_sys("{}: cannot clear O_NONBLOCK on {}", what, printable(path));
  }
  return fd;
}

FileSet::FileSet(const Plan& plan, Ttys& ttys) : plan_(plan), ttys_(ttys) {
  unix_ = std::make_unique<UnixSockets>(
      plan, [this](uint32_t id) { return get(id); },
      [this](uint32_t id, Fd fd) { files_[id] = std::move(fd); });
}

Fd FileSet::open_reg(const reg_file_entry& r) {
  Fd fd = open_checked(r.name(), r.flags(), r.has_mode(), r.mode(), fmt::format("file {}", r.id()));
  if (r.pos() && ::lseek(fd.get(), static_cast<off_t>(r.pos()), SEEK_SET) < 0 && errno != ESPIPE)
    fail_sys("cannot seek {} to {}", printable(r.name()), r.pos());
  return fd;
}

// A memfd is created once per inode, filled, sealed; each open file on it is a new open of
// it (through /proc/self/fd) with its own flags and offset.
Fd FileSet::open_memfd(const memfd_file_entry& m) {
  auto& mfd = memfds_[m.inode_id()];
  if (!mfd) {
    auto it = plan_.memfd_inodes.find(m.inode_id());
    if (it == plan_.memfd_inodes.end())
      fail("image memfd.img does not hold memfd inode {} of file {}", m.inode_id(), m.id());
    const memfd_inode_entry& mi = it->second;
    const std::string name = printable(mi.name());
    constexpr uint32_t kSealSeal = 1;  // F_SEAL_SEAL alone: created without MFD_ALLOW_SEALING
    bool sealing = mi.seals() != kSealSeal;
    mfd.reset(::memfd_create(mi.name().c_str(), MFD_CLOEXEC | (sealing ? MFD_ALLOW_SEALING : 0)));
    if (!mfd) fail_sys("cannot create memfd {}", name);
    if (mi.size() > static_cast<uint64_t>(INT64_MAX) ||
        ::ftruncate(mfd.get(), static_cast<off_t>(mi.size())) < 0)
      fail_sys("cannot size memfd {} to {} bytes", name, mi.size());
    const SharedPages& sp = plan_.shared_pages.at(mi.shmid());  // checked by the planner
    std::string pages = fmt::format("{}/pages-{}.img", plan_.dir, sp.pages_id);
    Fd pf = image::open_image(pages);
    off_t off = 0;
    for (const pagemap_entry& e : sp.runs) {
      uint64_t len = uint64_t{e.nr_pages()} * kernel::kPageSize;
      read_pages_in_chunks(pf.get(), pages, off, len, [&](uint64_t at, const char* p, size_t n) {
        // The last page may reach past the file's size: write only what the file holds.
        uint64_t start = e.vaddr() + at;
        uint64_t end = std::min<uint64_t>(start + n, mi.size());
        for (uint64_t w = start; w < end;) {
          ssize_t k = ::pwrite(mfd.get(), p + (w - start), end - w, static_cast<off_t>(w));
          if (k < 0 && errno == EINTR) continue;
          if (k <= 0) fail_sys("cannot fill memfd {}", name);
          w += static_cast<uint64_t>(k);
        }
      });
      off += static_cast<off_t>(len);
    }
    if (sealing && mi.seals() && ::fcntl(mfd.get(), F_ADD_SEALS, mi.seals()) < 0)
      fail_sys("cannot seal memfd {} with {:#x}", name, mi.seals());
  }
  uint32_t flags = m.flags() & ~static_cast<uint32_t>(O_CREAT | O_EXCL | O_TRUNC);
  Fd fd(::open(fmt::format("/proc/self/fd/{}", mfd.get()).c_str(),
               static_cast<int>(flags | O_CLOEXEC)));
  if (!fd) fail_sys("cannot open memfd file {}", m.id());
  if (m.pos() && ::lseek(fd.get(), static_cast<off_t>(m.pos()), SEEK_SET) < 0)
    fail_sys("cannot seek memfd file {} to {}", m.id(), m.pos());
  return fd;
}

Fd FileSet::open_pipe_end(uint32_t pipe_id, uint32_t flags, bool fifo, const reg_file_entry* r) {
  Pipe& p = pipes_[pipe_id];
  const std::string path = r ? r->name() : "";
  if (!p.rd) {
    if (fifo) {
      // O_RDWR never blocks on a FIFO and keeps it open while its ends are opened; checked to
      // still be a FIFO (a regular file there now would be taken as the pipe).
      p.rd = open_checked(path, O_RDWR, true, S_IFIFO, fmt::format("FIFO {}", pipe_id));
    } else {
      int fds[2];
      if (::pipe2(fds, O_CLOEXEC) < 0) fail_sys("cannot create pipe {}", pipe_id);
      p.rd.reset(fds[0]);
      p.wr.reset(fds[1]);
    }
    auto it = plan_.pipe_data.find({fifo, pipe_id});
    if (it != plan_.pipe_data.end()) {
      int wfd = fifo ? p.rd.get() : p.wr.get();
      if (it->second.size && ::fcntl(wfd, F_SETPIPE_SZ, it->second.size) < 0)
        fail_sys("cannot size pipe {} to {} bytes", pipe_id, it->second.size);
      put_pipe_data(wfd, it->second.bytes, pipe_id);
    }
  }
  const int acc = static_cast<int>(flags & O_ACCMODE);
  Fd end;
  if (fifo) {
    end.reset(::open(path.c_str(), (acc | O_NONBLOCK | O_CLOEXEC)));
    if (!end) fail_sys("cannot open FIFO {}", printable(path));
    struct stat st;
    if (::fstat(end.get(), &st) < 0 || !S_ISFIFO(st.st_mode))
      fail("FIFO {}: {} is no longer a FIFO: restore needs the same file", pipe_id,
           printable(path));
  } else {
    // A new open file on the pipe (as a FIFO open would be), not a dup of cryo's end: each
    // open file keeps its own status flags. Never blocks: cryo holds both ends.
    int mine = acc == O_RDONLY ? p.rd.get() : p.wr.get();
    end.reset(::open(fmt::format("/proc/self/fd/{}", mine).c_str(), acc | O_CLOEXEC));
    if (!end) fail_sys("cannot open an end of pipe {}", pipe_id);
  }
  // A pipe end made here is a new open file, so its status flags are its own.
  if (::fcntl(end.get(), F_SETFL, flags & (O_NONBLOCK | O_APPEND | O_ASYNC | O_DIRECT)) < 0)
    fail_sys("cannot set the flags of pipe {}", pipe_id);
  return end;
}

int FileSet::get(uint32_t id) {
  if (auto it = files_.find(id); it != files_.end()) return it->second.get();
  auto fe = plan_.files.find(id);
  if (fe == plan_.files.end()) fail("image files.img is corrupt: no file {}", id);
  const file_entry& f = fe->second;
  Fd fd;
  switch (f.type()) {
    case REG:
      fd = open_reg(f.reg());
      break;
    case TTY:
      fd = ttys_.open(f.tty());
      break;
    case PIPE:
      fd = open_pipe_end(f.pipe().pipe_id(), f.pipe().flags(), false, nullptr);
      break;
    case FIFO: {
      const reg_file_entry& r = plan_.reg(f.fifo().regf_id(), "FIFO", 0);
      fd = open_pipe_end(f.fifo().pipe_id(), r.flags(), true, &r);
      break;
    }
    case UNIXSK:
      fd = unix_->open(f);
      break;
    case INETSK:
      fd = open_inet_socket(f.isk());
      break;
    case EVENTFD:
      fd = open_eventfd(f.efd());
      break;
    case TIMERFD:
      fd = open_timerfd(f.tfd());
      break;
    case SIGNALFD:
      fd = open_signalfd(f.sgfd());
      break;
    case EVENTPOLL:
      fd = open_eventpoll(f.epfd());
      break;
    case MEMFD:
      fd = open_memfd(f.memfd());
      break;
    case INOTIFY:
      fd = open_inotify(f.ify());
      break;
    case FANOTIFY:
      fd = open_fanotify(f.ffy());
      break;
    default:
      fail("file {}: kind {} is not supported yet", id, static_cast<int>(f.type()));
  }
  int raw = fd.get();
  files_[id] = std::move(fd);
  return raw;
}

void restore_files(RemoteTask& rt, const TaskPlan& t, FileSet& files) {
  const pid_t pid = t.pid();
  if (t.fds.empty()) return;
  // The task takes each file from cryo with pidfd_getfd. Its pidfd on cryo sits above every
  // fd number to restore, so fds can be placed in increasing order: the lowest free number
  // is then never above the one wanted.
  uint64_t top = t.fds.back().fd() + 1;
  // Also above the numbers an epoll registration of a closed fd is put back at for a moment.
  for (const auto& fdi : t.fds) {
    const file_entry& f = files.entry(fdi.id());
    if (f.type() != EVENTPOLL) continue;
    for (const auto& tfd : f.epfd().tfd())
      if (tfd.has_cryo_target_id()) top = std::max<uint64_t>(top, uint64_t{tfd.tfd()} + 1);
  }
  long p = rt.check("pidfd_open", SYS_pidfd_open, {static_cast<uint64_t>(::getpid()), 0});
  long pidfd = rt.check("fcntl(F_DUPFD_CLOEXEC)", SYS_fcntl,
                        {static_cast<uint64_t>(p), F_DUPFD_CLOEXEC,
                         std::max<uint64_t>(top, static_cast<uint64_t>(p))});
  if (pidfd != p) rt.check("close", SYS_close, {static_cast<uint64_t>(p)});
  for (const auto& fdi : t.fds) {
    const uint64_t target = fdi.fd();
    const bool cloexec = fdi.flags() & FD_CLOEXEC;
    int mine = files.get(fdi.id());
    long got =
        rt.syscall(SYS_pidfd_getfd, {static_cast<uint64_t>(pidfd), static_cast<uint64_t>(mine), 0});
    if (got < 0)
      fail_errno(static_cast<int>(-got), "task {} fd {}: cannot take file {} from cryo", pid,
                 target, fdi.id());
    if (static_cast<uint64_t>(got) != target) {
      rt.check("dup3", SYS_dup3, {static_cast<uint64_t>(got), target, cloexec ? O_CLOEXEC : 0u});
      rt.check("close", SYS_close, {static_cast<uint64_t>(got)});
    } else if (!cloexec) {
      rt.check("fcntl(F_SETFD)", SYS_fcntl, {target, F_SETFD, 0});
    }
    log::debug("task {} fd {}: file {}", pid, target, fdi.id());
  }

  // epoll registrations, now that every fd number they name is in place.
  for (const auto& fdi : t.fds) {
    const file_entry& f = files.entry(fdi.id());
    if (f.type() != EVENTPOLL || !files.first_fill(fdi.id())) continue;
    auto add = [&](const eventpoll_tfd_entry& tfd, uint64_t epfd) {
      struct __attribute__((packed)) {
        uint32_t events;
        uint64_t data;
      } ev{tfd.events(), tfd.data()};
      uint64_t a = rt.put(0, &ev, sizeof ev);
      long r = rt.syscall(SYS_epoll_ctl, {epfd, EPOLL_CTL_ADD, tfd.tfd(), a});
      if (r < 0)
        fail_errno(static_cast<int>(-r), "task {}: cannot register fd {} in epoll fd {} again", pid,
                   tfd.tfd(), fdi.fd());
    };
    for (const auto& tfd : f.epfd().tfd())
      if (!tfd.has_cryo_target_id()) add(tfd, fdi.fd());
    // A file registered under an fd number that was closed (or reused) since: it is put at
    // that number for the time of the registration, the number's own file moved aside.
    for (const auto& tfd : f.epfd().tfd()) {
      if (!tfd.has_cryo_target_id()) continue;
      const uint64_t num = tfd.tfd();
      long got =
          rt.syscall(SYS_pidfd_getfd, {static_cast<uint64_t>(pidfd),
                                       static_cast<uint64_t>(files.get(tfd.cryo_target_id())), 0});
      if (got < 0)
        fail_errno(static_cast<int>(-got), "task {}: cannot take file {} watched by epoll fd {}",
                   pid, tfd.cryo_target_id(), fdi.fd());
      if (static_cast<uint64_t>(got) == num) {  // the number was free and lowest
        add(tfd, fdi.fd());
        rt.check("close", SYS_close, {num});
        continue;
      }
      auto holder = std::find_if(t.fds.begin(), t.fds.end(),
                                 [&](const fdinfo_entry& e) { return e.fd() == num; });
      long aside = -1;
      if (holder != t.fds.end())
        aside = rt.check("fcntl(F_DUPFD_CLOEXEC)", SYS_fcntl,
                         {num, F_DUPFD_CLOEXEC, static_cast<uint64_t>(pidfd) + 1});
      rt.check("dup3", SYS_dup3, {static_cast<uint64_t>(got), num, O_CLOEXEC});
      // (The epoll itself may sit at that number: it is the copy moved aside then.)
      add(tfd, num == fdi.fd() ? static_cast<uint64_t>(aside) : fdi.fd());
      if (aside >= 0) {
        bool cloexec = holder->flags() & FD_CLOEXEC;
        rt.check("dup3", SYS_dup3, {static_cast<uint64_t>(aside), num, cloexec ? O_CLOEXEC : 0u});
        rt.check("close", SYS_close, {static_cast<uint64_t>(aside)});
      } else {
        rt.check("close", SYS_close, {num});
      }
      rt.check("close", SYS_close, {static_cast<uint64_t>(got)});
    }
  }
  rt.check("close", SYS_close, {static_cast<uint64_t>(pidfd)});
}

void restore_fs(RemoteTask& rt, const TaskPlan& t, const Plan& plan) {
  const pid_t pid = t.pid();
  const std::string& root = plan.reg(t.fs.root_id(), "root", pid).name();
  const std::string& cwd = plan.reg(t.fs.cwd_id(), "cwd", pid).name();
  // The working directory is a path from the outer root: enter it before the chroot.
  long r = rt.syscall(SYS_chdir, {rt.put_str(0, cwd)});
  if (r < 0)
    fail_errno(static_cast<int>(-r), "task {}: cannot enter its working directory {}", pid, cwd);
  if (root != "/") rt.check("chroot", SYS_chroot, {rt.put_str(0, root)});
  if (t.fs.has_umask()) rt.check("umask", SYS_umask, {t.fs.umask()});
}

}  // namespace cryo::restore
