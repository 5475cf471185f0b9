#include "restore/event_files.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/error.h"

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

}  // namespace cryo::restore
