#include "restore/tty.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "image/fdinfo.h"
#include "image/image.h"
#include "infect/scratch_arena.h"
#include "kernel/tty.h"
#include "proc/proc.h"
#include "restore/file_kind.h"
#include "restore/files.h"

namespace cryo::restore {
namespace {

// The terminal cryo itself runs in: a shell job's terminal fds are attached to it.
std::string own_terminal() {
  for (int fd : {0, 1, 2}) {
    char buf[256];
    if (::isatty(fd) && ::ttyname_r(fd, buf, sizeof buf) == 0) return buf;
  }
  fail(
      "the images hold a shell job but cryo does not run in a terminal: run cryo restore -j "
      "from the terminal the job should use");
}

kernel::Termios2 termios_of(const termios_entry& e) {
  kernel::Termios2 t{};
  t.c_iflag = e.c_iflag();
  t.c_oflag = e.c_oflag();
  t.c_cflag = e.c_cflag();
  t.c_lflag = e.c_lflag();
  t.c_line = static_cast<uint8_t>(e.c_line());
  t.c_ispeed = e.c_ispeed();
  t.c_ospeed = e.c_ospeed();
  for (int i = 0; i < e.c_cc_size() && i < static_cast<int>(sizeof t.c_cc); i++)
    t.c_cc[i] = static_cast<uint8_t>(e.c_cc(i));
  return t;
}

}  // namespace

bool tty_in_tree(const Plan& plan, const tty_file_entry& f) {
  auto it = plan.ttys.find(f.tty_info_id());
  if (it == plan.ttys.end() || it->second.type() != PTY || !it->second.has_pty()) return false;
  return plan.ttys.count(image::pty_master_id(it->second.pty().index())) != 0;
}

Ttys::Ttys(const Plan& plan) : plan_(plan) {
  if (!image::exists(plan.dir, "tty-data.img")) return;
  image::Reader r(plan.dir, "tty-data.img", image::magic::kTtyData);
  tty_data_entry e;
  while (r.next(e)) data_[e.tty_id()] += e.data();
}

Ttys::Pair& Ttys::pair(uint32_t index) {
  if (auto it = pairs_.find(index); it != pairs_.end()) return it->second;
  const tty_info_entry& info = plan_.ttys.at(image::pty_master_id(index));
  const std::string what = fmt::format("pty {}", index);
  const std::string pts = fmt::format("/dev/pts/{}", index);
  // The dumped tree's own pty may take a moment to go away after the dump killed it.
  for (int i = 0; i < 100 && ::access(pts.c_str(), F_OK) == 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));

  // A new master gets the lowest free index: take (and hold) the lower ones until ours.
  if (auto max = proc::try_read_file("/proc/sys/kernel/pty/max")) {
    unsigned long limit = std::strtoul(max->c_str(), nullptr, 10);
    if (limit && index >= limit)
      fail("{}: beyond the {} ptys this machine allows (kernel.pty.max)", what, limit);
  }
  Pair p;
  std::vector<Fd> lower;
  for (;;) {
    Fd m(::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!m) fail_sys("{}: cannot open /dev/ptmx", what);
    unsigned got = 0;
    if (::ioctl(m.get(), TIOCGPTN, &got) < 0) fail_sys("{}: cannot read a new pty's index", what);
    if (got == index) {
      p.master = std::move(m);
      break;
    }
    if (got > index || lower.size() > 4096)
      fail(
          "{}: {} is in use on this machine (a new pty got index {}): end the process that "
          "holds it, or restore where that pty is free",
          what, pts, got);
    lower.push_back(std::move(m));
  }
  lower.clear();
  const int m = p.master.get();
  int unlock = 0;
  if (::ioctl(m, TIOCSPTLCK, &unlock) < 0) fail_sys("{}: cannot unlock it", what);
  p.slave.reset(::ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!p.slave) fail_sys("{}: cannot open its slave {}", what, pts);

  // On a master, the termios and window size ioctls act on its slave.
  if (info.has_termios()) {
    kernel::PtyQueues q;
    if (auto d = data_.find(image::pty_slave_id(index)); d != data_.end()) q.to_slave = d->second;
    if (auto d = data_.find(image::pty_master_id(index)); d != data_.end()) q.to_master = d->second;
    kernel::pty_requeue(m, p.slave.get(), termios_of(info.termios()), q, what);
    log::debug("{}: {} bytes queued for the slave, {} for the master", what, q.to_slave.size(),
               q.to_master.size());
  }
  if (info.has_winsize()) {
    winsize ws{};
    ws.ws_row = static_cast<unsigned short>(info.winsize().ws_row());
    ws.ws_col = static_cast<unsigned short>(info.winsize().ws_col());
    ws.ws_xpixel = static_cast<unsigned short>(info.winsize().ws_xpixel());
    ws.ws_ypixel = static_cast<unsigned short>(info.winsize().ws_ypixel());
    if (::ioctl(m, TIOCSWINSZ, &ws) < 0) fail_sys("{}: cannot set its window size", what);
  }
  if (info.has_termios_locked()) {
    kernel::Termios2 lck = termios_of(info.termios_locked());
    if (::ioctl(m, TIOCSLCKTRMIOS, &lck) < 0)
      fail_sys("{}: cannot lock its terminal attributes", what);
  }
  int pkt = info.packet_mode();
  if (::ioctl(m, TIOCPKT, &pkt) < 0) fail_sys("{}: cannot set packet mode", what);
  if (info.has_uid() && info.has_gid() && ::fchown(p.slave.get(), info.uid(), info.gid()) < 0)
    fail_sys("{}: cannot give {} to uid {} gid {}", what, pts, info.uid(), info.gid());
  log::info("{} made again", what);
  return pairs_[index] = std::move(p);
}

Fd Ttys::open(const tty_file_entry& f) {
  if (!tty_in_tree(plan_, f)) {
    std::string tty = own_terminal();
    Fd fd(::open(tty.c_str(), static_cast<int>((f.flags() & ~O_CREAT) | O_NOCTTY | O_CLOEXEC)));
    if (!fd) fail_sys("cannot open terminal {}", tty);
    return fd;
  }
  const tty_info_entry& info = plan_.ttys.at(f.tty_info_id());
  const uint32_t index = info.pty().index();
  Pair& p = pair(index);
  Fd fd;
  if (f.tty_info_id() == image::pty_master_id(index)) {
    // A pty has one master: every master file of the tree is this one open file.
    fd.reset(::fcntl(p.master.get(), F_DUPFD_CLOEXEC, 0));
    if (!fd) fail_sys("pty {}: cannot duplicate its master", index);
  } else {
    const int acc = static_cast<int>(f.flags() & O_ACCMODE);
    fd.reset(::ioctl(p.master.get(), TIOCGPTPEER, acc | O_NOCTTY | O_CLOEXEC));
    if (!fd) fail_sys("pty {}: cannot open its slave", index);
  }
  if (::fcntl(fd.get(), F_SETFL, f.flags() & (O_NONBLOCK | O_APPEND)) < 0)
    fail_sys("pty {}: cannot set the flags of file {}", index, f.id());
  return fd;
}

const tty_info_entry* Ttys::session_tty(pid_t sid) const {
  for (const auto& [id, info] : plan_.ttys)
    if (info.type() == PTY && info.has_pty() && id == image::pty_master_id(info.pty().index()) &&
        info.sid() == static_cast<uint32_t>(sid))
      return &info;
  return nullptr;
}

// The slave of pair `p` as a new fd in task `rt` (taken from cryo with pidfd_getfd).
int Ttys::remote_slave(RemoteTask& rt, const Pair& p, uint32_t index) {
  const int pidfd = rt.check<int>("pidfd_open", SYS_pidfd_open, ::getpid(), 0);
  SyscallResult fd = rt.syscall(SYS_pidfd_getfd, pidfd, p.slave.get(), 0);
  rt.check("close", SYS_close, pidfd);
  return fd.or_fail<int>("cannot take the slave of pty {} from cryo", index);
}

void Ttys::attach_ctty(RemoteTask& rt) {
  const tty_info_entry* info = session_tty(rt.tid());
  if (!info) return;
  const uint32_t index = info->pty().index();
  Pair& p = pair(index);
  const int fd = remote_slave(rt, p, index);
  SyscallResult r = rt.syscall(SYS_ioctl, fd, TIOCSCTTY, 0);
  rt.check("close", SYS_close, fd);
  r.or_fail("cannot make /dev/pts/{} its controlling terminal again (TIOCSCTTY)", index);
  log::debug("task {}: controlling terminal /dev/pts/{}", rt.tid(), index);
}

void Ttys::set_foreground(RemoteTask& rt) {
  const tty_info_entry* info = session_tty(rt.tid());
  if (!info || !info->pgrp()) return;
  const uint32_t index = info->pty().index();
  const pid_t pgrp = static_cast<pid_t>(info->pgrp());
  bool exists = false;
  for (const auto& t : plan_.tasks) exists |= !t.zombie && t.ps.pgid() == info->pgrp();
  if (!exists) {
    log::warn("pty {}: its foreground group {} has no task in the tree; left as is", index, pgrp);
    return;
  }
  const int fd = remote_slave(rt, pair(index), index);
  ScratchArena arena(rt);
  SyscallResult r = rt.syscall(SYS_ioctl, fd, TIOCSPGRP, arena.put(pgrp));
  rt.check("close", SYS_close, fd);
  r.or_fail("cannot make group {} the foreground of /dev/pts/{} (TIOCSPGRP)", pgrp, index);
}

void Ttys::finish() {
  for (auto& [index, p] : pairs_) {
    const tty_info_entry& info = plan_.ttys.at(image::pty_master_id(index));
    int one = 1;
    if (info.locked() && ::ioctl(p.master.get(), TIOCSPTLCK, &one) < 0)
      fail_sys("pty {}: cannot lock it", index);
    if (auto s = plan_.ttys.find(image::pty_slave_id(index));
        s != plan_.ttys.end() && s->second.exclusive() && ::ioctl(p.slave.get(), TIOCEXCL) < 0)
      fail_sys("pty {}: cannot make its slave exclusive", index);
    if (info.exclusive() && ::ioctl(p.master.get(), TIOCEXCL) < 0)
      fail_sys("pty {}: cannot make its master exclusive", index);
  }
  pairs_.clear();
}

namespace {

class TtyKind : public FileKind {
 public:
  fd_types type() const override { return TTY; }
  void check(Plan& plan, const file_entry& f, pid_t pid, int fd) const override {
    if (!plan.ttys.count(f.tty().tty_info_id()))
      fail(
          "image files.img is corrupt: task {} fd {} is terminal {}, which tty-info.img does "
          "not hold",
          pid, fd, f.tty().tty_info_id());
    if (!tty_in_tree(plan, f.tty())) plan.shell_job = true;
  }
  Fd open(const file_entry& f, FileSet& files) override { return files.ttys().open(f.tty()); }
};

}  // namespace

std::unique_ptr<FileKind> make_tty_kind() {
  return std::make_unique<TtyKind>();
}

}  // namespace cryo::restore
