#include "infect/fd_transfer.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "base/error.h"
#include "base/log.h"
#include "infect/scratch_arena.h"
#include "kernel/syscalls.h"

namespace cryo {

void FdSource::open_all() {
  if (!pidfd_) {
    pidfd_.reset(kernel::pidfd_open(pid_));
    if (!pidfd_) fail_sys("task {}: cannot open a pidfd on it to copy its fds", pid_);
  }
  fd_dir();
  fdinfo_dir();
}

Fd FdSource::steal(int fd, const char* what) {
  if (!pidfd_) open_all();
  Fd copy(kernel::pidfd_getfd(pidfd_.get(), fd));
  if (!copy) fail_sys("task {} fd {}: cannot get a copy of its {}", pid_, fd, what);
  return copy;
}

int FdSource::dir(Fd& d, const char* name) {
  if (!d) {
    const std::string path = fmt::format("/proc/{}/{}", pid_, name);
    d.reset(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!d) fail_sys("task {}: cannot open {}", pid_, path);
  }
  return d.get();
}

Fd steal_fd(pid_t pid, int fd, const char* what) {
  return FdSource(pid).steal(fd, what);
}

namespace {

// A pidfd cryo holds on itself, opened once.
int self_pidfd() {
  static const int fd = [] {
    const int f = kernel::pidfd_open(::getpid());
    if (f < 0) fail_sys("cannot open a pidfd on cryo itself");
    return f;
  }();
  return fd;
}

}  // namespace

FdInstaller::FdInstaller(RemoteTask& rt, uint64_t above) : rt_(rt) {
  SyscallResult opened = rt_.syscall(SYS_pidfd_open, ::getpid(), 0);
  const auto p = opened.error() == ESRCH
                     ? receive_self_pidfd()
                     : opened.or_fail<uint64_t>("cannot open a pidfd on cryo (pidfd_open)");
  pidfd_ = rt_.check<uint64_t>("fcntl(F_DUPFD_CLOEXEC)", SYS_fcntl, p, F_DUPFD_CLOEXEC,
                               std::max(above, p));
  if (pidfd_ != p) rt_.check("close", SYS_close, p);
  open_ = true;
}

// A task in a nested pid namespace, where cryo has no PID (and its /proc may not show
// cryo): it makes a socket pair, cryo takes one end and sends its own pidfd through it.
uint64_t FdInstaller::receive_self_pidfd() {
  ScratchArena arena(rt_);
  auto pair = arena.reserve<int>(2);
  rt_.check("socketpair", SYS_socketpair, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair);
  int sv[2];
  rt_.read_mem(pair, sv, sizeof sv);
  Fd mine = steal_fd(rt_.tid(), sv[1], "socket to send cryo's pidfd through");
  rt_.check("close", SYS_close, sv[1]);
  const char byte = 0;
  if (send_fd(mine.get(), &byte, 1, self_pidfd()) != 1)
    fail_sys("task {}: cannot send it cryo's pidfd", rt_.tid());
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  auto rbyte = arena.reserve<char>();
  auto rcontrol = arena.reserve<char>(sizeof control);
  auto riov = arena.put(iovec{rbyte.as_field(), 1});
  msghdr rmsg{};
  rmsg.msg_iov = riov.as_field();
  rmsg.msg_iovlen = 1;
  rmsg.msg_control = rcontrol.as_field();
  rmsg.msg_controllen = sizeof control;
  auto rhdr = arena.put(rmsg);
  rt_.syscall(SYS_recvmsg, sv[0], rhdr, MSG_CMSG_CLOEXEC).or_fail("cannot receive cryo's pidfd");
  rt_.check("close", SYS_close, sv[0]);
  rt_.read_mem(rcontrol, control, sizeof control);
  msghdr view{};
  view.msg_control = control;
  view.msg_controllen = rt_.read(rhdr).msg_controllen;
  const cmsghdr* rc = CMSG_FIRSTHDR(&view);
  if (!rc || rc->cmsg_type != SCM_RIGHTS || rc->cmsg_len != CMSG_LEN(sizeof(int)))
    fail("task {}: cryo's pidfd did not arrive", rt_.tid());
  int got;
  std::memcpy(&got, CMSG_DATA(rc), sizeof got);
  return static_cast<uint64_t>(got);
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
  rt_.check("close", SYS_close, pidfd_);
}

uint64_t FdInstaller::take(int mine, std::string_view what) {
  return rt_.syscall(SYS_pidfd_getfd, pidfd_, mine, 0)
      .or_fail<uint64_t>("cannot take {} from cryo", what);
}

// A file at a time takes three remote syscalls (pidfd_getfd, dup3 or fcntl, close), each a
// round trip through ptrace: thousands of fds would take seconds. Instead cryo sends its
// files over a unix datagram socket, up to SCM_MAX_FD in one message, and the task receives
// each message with one recvmsg. The kernel puts received files at the lowest free numbers,
// in order: with every number below taken, a run of consecutive targets lands exactly. Numbers
// no file goes to are filled with placeholders (cryo's /dev/null), closed at the end, one
// close_range per gap. Close-on-exec: every file arrives with the setting most of them have
// (MSG_CMSG_CLOEXEC or not); the others are set after, each run of consecutive files with
// one close_range(CLOSE_RANGE_CLOEXEC), or each file with one fcntl(F_SETFD, 0) when close-
// on-exec must come off. The numbers the task got are checked against the targets.
void FdInstaller::install_all(const std::vector<Placement>& all) {
  if (all.empty()) return;
  constexpr size_t kMaxPerMessage = 253;            // SCM_MAX_FD
  constexpr unsigned kCloseRangeCloexec = 1u << 2;  // CLOSE_RANGE_CLOEXEC
  const uint64_t top = all.back().target;
  if (top >= pidfd_) fail("internal: fd {} to install is not below the pidfd {}", top, pidfd_);
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0)
    fail_sys("task {}: cannot make a socket pair to pass its files", rt_.tid());
  Fd mine(sv[0]), theirs(sv[1]);
  Fd placeholder(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!placeholder) fail_sys("cannot open /dev/null");
  // The task's end, above every number to fill.
  const uint64_t got = take(theirs.get(), "the socket its files come through");
  const uint64_t sock =
      rt_.check<uint64_t>("fcntl(F_DUPFD_CLOEXEC)", SYS_fcntl, got, F_DUPFD_CLOEXEC, pidfd_ + 1);
  rt_.check("close", SYS_close, got);

  // Every number from 0 to the highest target: a file or a placeholder.
  struct Slot {
    int fd;
    bool cloexec;
    bool hole;
  };
  std::vector<Slot> slots(top + 1, Slot{placeholder.get(), true, true});
  for (const Placement& p : all) slots[p.target] = Slot{p.mine, p.cloexec, false};
  // Which setting to receive with: the one that leaves fewer remote calls after.
  size_t cloexec_runs = 0, plain = 0;
  for (size_t i = 0; i < slots.size(); i++) {
    if (slots[i].hole) continue;
    if (!slots[i].cloexec) plain++;
    if (slots[i].cloexec && (i == 0 || !slots[i - 1].cloexec || slots[i - 1].hole)) cloexec_runs++;
  }
  const bool receive_cloexec = plain < cloexec_runs;

  size_t at = 0;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxPerMessage));
  while (at < slots.size()) {
    const size_t n = std::min(kMaxPerMessage, slots.size() - at);
    // Send.
    char byte = 0;
    iovec iov{&byte, 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    int* fds = reinterpret_cast<int*>(CMSG_DATA(c));
    for (size_t k = 0; k < n; k++) fds[k] = slots[at + k].fd;
    if (::sendmsg(mine.get(), &msg, MSG_NOSIGNAL) != 1)
      fail_sys("task {}: cannot send it files {} to {}", rt_.tid(), at, at + n - 1);
    // Receive, in the task, into a message of its own: msghdr, iovec, one byte, control.
    const size_t clen = CMSG_SPACE(sizeof(int) * n);
    ScratchArena arena(rt_);
    auto rbyte = arena.reserve<char>();
    auto rcontrol = arena.reserve<char>(clen);
    auto riov = arena.put(iovec{rbyte.as_field(), 1});
    msghdr rmsg{};
    rmsg.msg_iov = riov.as_field();
    rmsg.msg_iovlen = 1;
    rmsg.msg_control = rcontrol.as_field();
    rmsg.msg_controllen = clen;
    auto rhdr = arena.put(rmsg);
    const long r = rt_.syscall(SYS_recvmsg, sock, rhdr, receive_cloexec ? MSG_CMSG_CLOEXEC : 0)
                       .or_fail("cannot receive its files {} to {}", at, at + n - 1);
    if (r != 1)
      fail("task {}: its files {} to {} came without their byte", rt_.tid(), at, at + n - 1);
    // Check where they landed.
    const msghdr back = rt_.read(rhdr);
    rt_.read_mem(rcontrol, control.data(), clen);
    msghdr view{};
    view.msg_control = control.data();
    view.msg_controllen = back.msg_controllen;
    cmsghdr* rc = CMSG_FIRSTHDR(&view);
    if ((back.msg_flags & MSG_CTRUNC) || !rc || rc->cmsg_type != SCM_RIGHTS ||
        rc->cmsg_len != CMSG_LEN(sizeof(int) * n))
      fail("task {}: its files {} to {} did not all arrive", rt_.tid(), at, at + n - 1);
    const int* landed = reinterpret_cast<const int*>(CMSG_DATA(rc));
    for (size_t k = 0; k < n; k++)
      if (static_cast<uint64_t>(landed[k]) != at + k)
        fail("task {}: file for fd {} landed at fd {}: an fd below it was not free", rt_.tid(),
             at + k, landed[k]);
    at += n;
  }
  // Close-on-exec where it differs from what the files came with.
  for (size_t i = 0; i < slots.size(); i++) {
    if (slots[i].hole || slots[i].cloexec == receive_cloexec) continue;
    if (receive_cloexec) {
      rt_.check("fcntl(F_SETFD)", SYS_fcntl, i, F_SETFD, 0);
      continue;
    }
    size_t j = i;
    while (j + 1 < slots.size() && !slots[j + 1].hole && slots[j + 1].cloexec) j++;
    rt_.check("close_range(CLOSE_RANGE_CLOEXEC)", SYS_close_range, i, j, kCloseRangeCloexec);
    i = j;
  }
  // Close the placeholders, a range at a time.
  for (size_t i = 0; i < slots.size();) {
    if (!slots[i].hole) {
      i++;
      continue;
    }
    size_t j = i;
    while (j + 1 < slots.size() && slots[j + 1].hole) j++;
    rt_.check("close_range", SYS_close_range, i, j, 0);
    i = j + 1;
  }
  rt_.check("close", SYS_close, sock);
  log::debug("task {}: {} files installed", rt_.tid(), all.size());
}

}  // namespace cryo
