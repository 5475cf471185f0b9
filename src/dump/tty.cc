#include "dump/tty.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>

#include <cstring>

#include "base/error.h"
#include "base/log.h"
#include "dump/event_files.h"
#include "dump/ghost_files.h"
#include "image/fdinfo.h"
#include "image/image.h"
#include "kernel/syscalls.h"
#include "kernel/tty.h"

namespace cryo::dump {
namespace {

constexpr unsigned kPtmxMajor = 5, kPtmxMinor = 2;
constexpr unsigned kTtyMajor = 5, kTtyMinor = 0;  // /dev/tty: the controlling terminal
constexpr unsigned kPtsMajorFirst = 136, kPtsMajorLast = 143;
// Not a pty index: bit 31 keeps other terminals' ids apart from (index << 1 | slave).
constexpr uint32_t kOtherTtyId = 1u << 31;

bool is_ptmx(dev_t rdev) {
  return major(rdev) == kPtmxMajor && minor(rdev) == kPtmxMinor;
}
bool is_pts(dev_t rdev) {
  return major(rdev) >= kPtsMajorFirst && major(rdev) <= kPtsMajorLast;
}

void put_termios(termios_entry* e, const kernel::Termios2& t) {
  e->set_c_iflag(t.c_iflag);
  e->set_c_oflag(t.c_oflag);
  e->set_c_cflag(t.c_cflag);
  e->set_c_lflag(t.c_lflag);
  e->set_c_line(t.c_line);
  e->set_c_ispeed(t.c_ispeed);
  e->set_c_ospeed(t.c_ospeed);
  for (uint8_t c : t.c_cc) e->add_c_cc(c);
}

// An int-valued "get" ioctl of a pty.
int get_int(int fd, unsigned long req, const char* name, const std::string& what) {
  int v = 0;
  if (::ioctl(fd, req, &v) < 0) fail_sys("{}: {} failed", what, name);
  return v;
}

// The session or group the pty is the controlling terminal of; 0 when none.
pid_t get_ctty_owner(int master, unsigned long req, const char* name, const std::string& what) {
  pid_t v = 0;
  if (::ioctl(master, req, &v) < 0) {
    if (errno != ENOTTY) fail_sys("{}: {} failed", what, name);
    return 0;
  }
  return v;
}

}  // namespace

bool is_tty_rdev(dev_t rdev) {
  unsigned maj = major(rdev);
  // 4: ttyN/ttySN, 5: /dev/tty, console, ptmx, 136-143: pty slaves, 2/3: legacy ptys.
  return maj == 4 || maj == 5 || (maj >= kPtsMajorFirst && maj <= kPtsMajorLast) || maj == 2 ||
         maj == 3;
}

void TtyTable::add(FdContext& c, uint32_t id, file_entry* e) {
  const pid_t pid = c.pid;
  const int fd = c.fd;
  const std::string& link = c.link;
  const struct stat& st = c.st;
  uint32_t info_id;
  End* end = nullptr;
  if (is_ptmx(st.st_rdev)) {
    Fd copy = c.take_copy();
    unsigned index = 0;
    if (::ioctl(copy.get(), TIOCGPTN, &index) < 0)
      fail_sys("task {} fd {}: cannot read the index of pty master {}", pid, fd, link);
    info_id = image::pty_master_id(index);
    end = &ptys_[index].master;
    end->copy = std::move(copy);
  } else if (is_pts(st.st_rdev)) {
    uint32_t index = (major(st.st_rdev) - kPtsMajorFirst) * 256 + minor(st.st_rdev);
    info_id = image::pty_slave_id(index);
    end = &ptys_[index].slave;
    if (!end->copy) end->copy = c.take_copy();
  } else {
    info_id = kOtherTtyId | static_cast<uint32_t>(st.st_rdev);
    if (!others_.count(info_id)) {
      tty_info_entry ti;
      ti.set_id(info_id);
      ti.set_type(EXT_TTY);
      ti.set_locked(false);
      ti.set_exclusive(false);
      ti.set_packet_mode(false);
      ti.set_sid(0);
      ti.set_pgrp(0);
      ti.set_rdev(static_cast<uint32_t>(st.st_rdev));
      others_[info_id] = ti;
      other_holder_[info_id] = fmt::format("task {} fd {} is the terminal {}", pid, fd, link);
    }
  }
  if (end && !end->pid) {
    end->pid = pid;
    end->fd = fd;
    end->link = link;
    end->st = st;
  }
  auto* t = e->mutable_tty();
  t->set_id(id);
  t->set_tty_info_id(info_id);
  t->set_flags(c.flags);
  zero_fown(t->mutable_fown());
}

bool TtyTable::has_external() const {
  if (!others_.empty()) return true;
  for (const auto& [index, p] : ptys_)
    if (!p.master.pid) return true;
  return false;
}

void TtyTable::write(const std::string& dir, bool shell_job,
                     const std::function<bool(pid_t)>& in_tree) {
  const char* how = ": the tree is attached to a terminal; dump it with --shell-job (-j)";
  if (!shell_job) {
    for (const auto& [id, holder] : other_holder_) fail("{}{}", holder, how);
    for (const auto& [index, p] : ptys_)
      if (!p.master.pid)
        fail("task {} fd {} is the terminal {} whose master is not in the tree{}", p.slave.pid,
             p.slave.fd, p.slave.link, how);
  }
  std::vector<tty_info_entry> infos;
  std::vector<tty_data_entry> data;
  for (auto& [index, p] : ptys_) {
    tty_info_entry ti;
    ti.set_type(PTY);
    ti.mutable_pty()->set_index(index);
    ti.set_locked(false);
    ti.set_exclusive(false);
    ti.set_packet_mode(false);
    ti.set_sid(0);
    ti.set_pgrp(0);
    if (!p.master.pid) {
      // The shell job's terminal: only its identity, restore uses cryo's own terminal.
      ti.set_id(image::pty_slave_id(index));
      ti.set_rdev(static_cast<uint32_t>(p.slave.st.st_rdev));
      infos.push_back(ti);
      continue;
    }
    const std::string what =
        fmt::format("pty {} (master held by task {} fd {})", index, p.master.pid, p.master.fd);
    const int m = p.master.copy.get();
    // On a master, the termios, window size and session ioctls act on its slave.
    kernel::Termios2 t{}, lck{};
    winsize ws{};
    if (::ioctl(m, kernel::kTcgets2, &t) < 0)
      fail_sys("{}: cannot read the terminal attributes", what);
    if (::ioctl(m, TIOCGLCKTRMIOS, &lck) < 0)
      fail_sys("{}: cannot read the locked terminal attributes", what);
    if (::ioctl(m, TIOCGWINSZ, &ws) < 0) fail_sys("{}: cannot read the window size", what);
    const bool locked = get_int(m, TIOCGPTLCK, "TIOCGPTLCK", what);
    const bool packet = get_int(m, TIOCGPKT, "TIOCGPKT", what);
    const pid_t sid = get_ctty_owner(m, TIOCGSID, "TIOCGSID", what);
    const pid_t pgrp = get_ctty_owner(m, TIOCGPGRP, "TIOCGPGRP", what);
    if (sid && !in_tree(sid))
      fail(
          "{} is the controlling terminal of session {}, whose leader is not in the dumped "
          "tree: dump the tree from the session leader",
          what, sid);
    if (sid && pgrp && !in_tree(pgrp))
      log::warn("{}: foreground group {} has no leader in the tree; it will not be restored", what,
                pgrp);

    ti.set_locked(locked);
    ti.set_packet_mode(packet);
    ti.set_sid(static_cast<uint32_t>(sid));
    ti.set_pgrp(static_cast<uint32_t>(pgrp));
    put_termios(ti.mutable_termios(), t);
    put_termios(ti.mutable_termios_locked(), lck);
    auto* w = ti.mutable_winsize();
    w->set_ws_row(ws.ws_row);
    w->set_ws_col(ws.ws_col);
    w->set_ws_xpixel(ws.ws_xpixel);
    w->set_ws_ypixel(ws.ws_ypixel);
    struct stat pts {};
    std::string pts_path = fmt::format("/dev/pts/{}", index);
    if (::stat(pts_path.c_str(), &pts) == 0) {
      ti.set_uid(pts.st_uid);
      ti.set_gid(pts.st_gid);
    }

    tty_info_entry master = ti;
    master.set_id(image::pty_master_id(index));
    master.set_exclusive(get_int(m, TIOCGEXCL, "TIOCGEXCL", what));
    master.set_rdev(static_cast<uint32_t>(p.master.st.st_rdev));
    master.set_dev(static_cast<uint32_t>(p.master.st.st_dev));
    infos.push_back(master);

    if (!p.slave.pid) {
      // Without a slave in the tree there is no fd to put the master's unread bytes back
      // through, nor to read the slave's input from.
      pollfd pf{m, POLLIN, 0};
      ::poll(&pf, 1, 0);
      int n = 0;
      if (::ioctl(m, FIONREAD, &n) == 0 && n > 0)
        fail(
            "{}: the master has {} unread bytes but no process of the tree holds the slave "
            "/dev/pts/{}: not supported",
            what, n, index);
      // Input waiting for a slave no task holds goes with the dump: say how much.
      int peek = ::ioctl(m, TIOCGPTPEER, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
      int queued = 0;
      if (peek >= 0) {
        pollfd sp{peek, POLLIN, 0};
        ::poll(&sp, 1, 0);
        if (::ioctl(peek, FIONREAD, &queued) < 0) queued = 0;
        ::close(peek);
      }
      if (queued > 0)
        log::warn(
            "{}: {} bytes of input queued for /dev/pts/{} are not saved: no task of the "
            "tree holds that slave",
            what, queued, index);
      continue;
    }
    const int s = p.slave.copy.get();
    tty_info_entry slave = ti;
    slave.set_id(image::pty_slave_id(index));
    slave.set_exclusive(get_int(s, TIOCGEXCL, "TIOCGEXCL", what));
    slave.set_rdev(static_cast<uint32_t>(p.slave.st.st_rdev));
    slave.set_dev(static_cast<uint32_t>(p.slave.st.st_dev));
    infos.push_back(slave);

    // Reading the queues consumes them: they are put back at once. Locked attributes
    // would keep the line discipline from being switched while that is done.
    const kernel::Termios2 unlocked{};
    const bool has_lock = std::memcmp(&lck, &unlocked, sizeof lck) != 0;
    if (has_lock && ::ioctl(m, TIOCSLCKTRMIOS, &unlocked) < 0)
      fail_sys("{}: cannot unlock its terminal attributes for a moment", what);
    kernel::PtyQueues q;
    try {
      q = kernel::pty_drain(m, s, t, packet, what);
      kernel::pty_requeue(m, s, t, q, what);
      // Switching the attributes posts status changes to a packet-mode reader: drop them.
      int one = 1;
      if (packet && ::ioctl(m, TIOCPKT, &one) < 0) fail_sys("{}: cannot reset packet mode", what);
    } catch (const Error&) {
      if (has_lock) ::ioctl(m, TIOCSLCKTRMIOS, &lck);
      throw;
    }
    if (has_lock && ::ioctl(m, TIOCSLCKTRMIOS, &lck) < 0)
      fail_sys("{}: cannot lock its terminal attributes again", what);
    log::info("{}: {} bytes queued for the slave, {} for the master", what, q.to_slave.size(),
              q.to_master.size());
    if (!q.to_slave.empty()) {
      tty_data_entry d;
      d.set_tty_id(image::pty_slave_id(index));
      d.set_data(q.to_slave);
      data.push_back(std::move(d));
    }
    if (!q.to_master.empty()) {
      tty_data_entry d;
      d.set_tty_id(image::pty_master_id(index));
      d.set_data(q.to_master);
      data.push_back(std::move(d));
    }
  }
  ptys_.clear();  // cryo's copies are not needed any more
  for (const auto& [id, ti] : others_) infos.push_back(ti);
  if (!infos.empty()) {
    image::Writer w(dir, "tty-info.img", image::magic::kTtyInfo);
    for (const auto& ti : infos) w.put(ti);
    w.close();
  }
  if (!data.empty()) {
    image::Writer w(dir, "tty-data.img", image::magic::kTtyData);
    for (const auto& d : data) w.put(d);
    w.close();
  }
}

namespace {

// A terminal: a pty end of the tree, or the shell job's terminal (-j).
class TtyKind : public FileKind {
 public:
  fd_types type() const override { return TTY; }
  bool claims(FdContext& c) override {
    if (!S_ISCHR(c.st.st_mode) || !is_tty_rdev(c.st.st_rdev)) return false;
    // A VT, the console or a serial line that is not the task's controlling terminal is a
    // device file like any other, opened again by its path.
    if (!is_ptmx(c.st.st_rdev) && !is_pts(c.st.st_rdev) && major(c.st.st_rdev) != 2 &&
        major(c.st.st_rdev) != 3 && c.st.st_rdev != makedev(kTtyMajor, kTtyMinor) &&
        static_cast<dev_t>(proc::read_stat(c.pid).tty_nr) != c.st.st_rdev)
      return false;
    if (!deleted_path(c.link, c.proc_path).empty())
      fail("{}: a deleted terminal device is not supported yet", c.where());
    return true;
  }
  void dump(FdContext& c, uint32_t id, file_entry* e) override { ttys_.add(c, id, e); }
  void write(const DumpEnd& end) override {
    ttys_.write(end.dir, end.shell_job, end.in_tree);
    if (ttys_.has_external() && !end.shell_job)
      fail("the tree uses a terminal: dump it with --shell-job (-j)");
  }

 private:
  TtyTable ttys_;
};

}  // namespace

std::unique_ptr<FileKind> make_tty_kind(FileTable&) {
  return std::make_unique<TtyKind>();
}

}  // namespace cryo::dump
