#include "restore/event_files.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <sys/syscall.h>

#include <algorithm>
#include <optional>
#include <set>

#include "base/error.h"
#include "infect/scratch_arena.h"
#include "restore/file_kind.h"
#include "restore/files.h"

namespace cryo::restore {
namespace {

void set_flags(int fd, uint32_t flags, const char* what, uint32_t id) {
  if (::fcntl(fd, F_SETFL, flags & O_NONBLOCK) < 0)
    fail_sys("cannot set the flags of {} {}", what, id);
}

}  // namespace

Fd open_eventfd(const eventfd_file_entry& e) {
  Fd fd(::eventfd(0, EFD_CLOEXEC | ((e.flags() & 1) ? EFD_SEMAPHORE : 0)));
  if (!fd) fail_sys("cannot create eventfd {}", e.id());
  uint64_t c = e.counter();
  if (c && ::write(fd.get(), &c, sizeof c) != sizeof c)
    fail_sys("cannot set the counter of eventfd {} to {}", e.id(), c);
  set_flags(fd.get(), e.flags(), "eventfd", e.id());
  return fd;
}

Fd open_timerfd(const timerfd_entry& t) {
  Fd fd(::timerfd_create(static_cast<int>(t.clockid()), TFD_CLOEXEC));
  if (!fd) fail_sys("cannot create timerfd {} (clock {})", t.id(), t.clockid());
  // The remaining time is relative: the absolute flag of the original setting does not apply.
  itimerspec its{};
  its.it_value.tv_sec = static_cast<time_t>(t.vsec());
  its.it_value.tv_nsec = static_cast<long>(t.vnsec());
  its.it_interval.tv_sec = static_cast<time_t>(t.isec());
  its.it_interval.tv_nsec = static_cast<long>(t.insec());
  if (!its.it_value.tv_sec && !its.it_value.tv_nsec) its.it_value = its.it_interval;
  if ((its.it_value.tv_sec || its.it_value.tv_nsec) &&
      ::timerfd_settime(fd.get(), 0, &its, nullptr) < 0)
    fail_sys("cannot set timerfd {}", t.id());
  if (t.ticks()) {
    uint64_t ticks = t.ticks();
    constexpr unsigned long kSetTicks = _IOW('T', 0, uint64_t);  // TFD_IOC_SET_TICKS
    if (::ioctl(fd.get(), kSetTicks, &ticks) < 0)
      fail_sys("cannot restore the {} pending expirations of timerfd {}", ticks, t.id());
  }
  set_flags(fd.get(), t.flags(), "timerfd", t.id());
  return fd;
}

Fd open_signalfd(const signalfd_entry& s) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig = 1; sig <= 64; sig++)
    if (s.sigmask() & (1ULL << (sig - 1))) sigaddset(&set, sig);
  Fd fd(::signalfd(-1, &set, SFD_CLOEXEC));
  if (!fd) fail_sys("cannot create signalfd {}", s.id());
  set_flags(fd.get(), s.flags(), "signalfd", s.id());
  return fd;
}

Fd open_eventpoll(const eventpoll_file_entry& e) {
  Fd fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!fd) fail_sys("cannot create epoll instance {}", e.id());
  set_flags(fd.get(), e.flags(), "epoll instance", e.id());
  return fd;
}

namespace {

class EventfdKind : public FileKind {
 public:
  fd_types type() const override { return EVENTFD; }
  Fd open(const file_entry& f, FileSet&) override { return open_eventfd(f.efd()); }
};

class TimerfdKind : public FileKind {
 public:
  fd_types type() const override { return TIMERFD; }
  Fd open(const file_entry& f, FileSet&) override { return open_timerfd(f.tfd()); }
};

class SignalfdKind : public FileKind {
 public:
  fd_types type() const override { return SIGNALFD; }
  Fd open(const file_entry& f, FileSet&) override { return open_signalfd(f.sgfd()); }
};

// An epoll instance is made empty; the task registers its files in it once all its fds are in
// place, as epoll keys registrations by the task's own fd numbers.
class EventpollKind : public FileKind {
 public:
  fd_types type() const override { return EVENTPOLL; }
  Fd open(const file_entry& f, FileSet&) override { return open_eventpoll(f.epfd()); }
  // A registration of a closed fd is made with its file put back at that number a while.
  uint64_t needs_free(const file_entry& f) const override {
    uint64_t top = 0;
    for (const auto& tfd : f.epfd().tfd())
      if (tfd.has_cryo_target_id()) top = std::max<uint64_t>(top, uint64_t{tfd.tfd()} + 1);
    return top;
  }
  void needs(const file_entry& f, const Plan&, std::vector<uint32_t>* out) override {
    for (const auto& tfd : f.epfd().tfd())
      if (tfd.has_cryo_target_id()) out->push_back(tfd.cryo_target_id());
  }
  void settle(RemoteTask& rt, const TaskPlan& t, const fdinfo_entry& fdi, FdInstaller& installer,
              FileSet& files) override;

 private:
  std::set<uint32_t> filled_;  // epoll files registered (once, by the first task holding one)
};

void EventpollKind::settle(RemoteTask& rt, const TaskPlan& t, const fdinfo_entry& fdi,
                           FdInstaller& installer, FileSet& files) {
  if (!filled_.insert(fdi.id()).second) return;
  const file_entry& f = files.entry(fdi.id());
  auto add = [&](const eventpoll_tfd_entry& tfd, uint64_t epfd) {
    struct __attribute__((packed)) Event {
      uint32_t events;
      uint64_t data;
    };
    ScratchArena arena(rt);
    rt.syscall(SYS_epoll_ctl, epfd, EPOLL_CTL_ADD, tfd.tfd(),
               arena.put(Event{tfd.events(), tfd.data()}))
        .or_fail("cannot register fd {} in epoll fd {} again", tfd.tfd(), fdi.fd());
  };
  for (const auto& tfd : f.epfd().tfd())
    if (!tfd.has_cryo_target_id()) add(tfd, fdi.fd());
  // A file registered under an fd number that was closed (or reused) since: it is put at
  // that number for the time of the registration, the number's own file moved aside.
  for (const auto& tfd : f.epfd().tfd()) {
    if (!tfd.has_cryo_target_id()) continue;
    const uint64_t num = tfd.tfd();
    const uint64_t got = installer.take(
        files.get(tfd.cryo_target_id()),
        fmt::format("file {} watched by epoll fd {}", tfd.cryo_target_id(), fdi.fd()));
    if (got == num) {  // the number was free and lowest
      add(tfd, fdi.fd());
      rt.check("close", SYS_close, num);
      continue;
    }
    auto holder = std::find_if(t.fds.begin(), t.fds.end(),
                               [&](const fdinfo_entry& e) { return e.fd() == num; });
    std::optional<uint64_t> aside;
    if (holder != t.fds.end())
      aside = rt.check<uint64_t>("fcntl(F_DUPFD_CLOEXEC)", SYS_fcntl, num, F_DUPFD_CLOEXEC,
                                 installer.pidfd() + 1);
    rt.check("dup3", SYS_dup3, got, num, O_CLOEXEC);
    // (The epoll itself may sit at that number: it is the copy moved aside then.)
    add(tfd, num == fdi.fd() && aside ? *aside : fdi.fd());
    if (aside) {
      bool cloexec = holder->flags() & FD_CLOEXEC;
      rt.check("dup3", SYS_dup3, *aside, num, cloexec ? O_CLOEXEC : 0);
      rt.check("close", SYS_close, *aside);
    } else {
      rt.check("close", SYS_close, num);
    }
    rt.check("close", SYS_close, got);
  }
}

}  // namespace

std::unique_ptr<FileKind> make_eventfd_kind() {
  return std::make_unique<EventfdKind>();
}
std::unique_ptr<FileKind> make_timerfd_kind() {
  return std::make_unique<TimerfdKind>();
}
std::unique_ptr<FileKind> make_signalfd_kind() {
  return std::make_unique<SignalfdKind>();
}
std::unique_ptr<FileKind> make_eventpoll_kind() {
  return std::make_unique<EventpollKind>();
}

}  // namespace cryo::restore
