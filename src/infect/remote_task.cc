#include "infect/remote_task.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <time.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include "base/error.h"
#include "base/fault.h"
#include "base/log.h"
#include "proc/proc.h"

namespace cryo {

std::string WaitStatus::str() const {
  if (exited()) return fmt::format("exited with {}", exit_code());
  if (killed()) return fmt::format("killed by signal {}", term_sig());
  if (stopped())
    return event() ? fmt::format("stopped by ptrace event {}", event())
                   : fmt::format("stopped by signal {}", stop_sig());
  return fmt::format("status {:#x}", raw_);
}

namespace {

// A stop of a task resumed with PTRACE_SYSCALL at a syscall entry or exit (TRACESYSGOOD).
constexpr int kSyscallStop = SIGTRAP | 0x80;

bool is_fault(int sig) {
  return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP ||
         sig == SIGSYS;
}

void wake(int) {}

// Wakes this thread out of a blocking waitpid: a timer of the thread whose signal has a
// handler without SA_RESTART, so that the wait fails with EINTR. It fires periodically once
// armed, so that a tick that came just before the wait began cannot make it sleep forever.
class WaitAlarm {
 public:
  WaitAlarm() : sig_(SIGRTMIN + 6) {
    static std::once_flag once;
    std::call_once(once, [this] {
      struct sigaction sa {};
      sa.sa_handler = wake;
      sigemptyset(&sa.sa_mask);
      ::sigaction(sig_, &sa, nullptr);
    });
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig_);
    ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);  // a launcher may have blocked it
    sigevent ev{};
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = sig_;
    ev._sigev_un._tid = ::gettid();  // sigev_notify_thread_id: glibc 2.36 lacks the name
    if (::timer_create(CLOCK_MONOTONIC, &ev, &timer_) < 0)
      fail_sys("cannot create a timer for waiting on tasks");
  }
  ~WaitAlarm() { ::timer_delete(timer_); }
  void arm(std::chrono::nanoseconds first) {
    using namespace std::chrono;
    auto ts = [](nanoseconds d) {
      return timespec{static_cast<time_t>(duration_cast<seconds>(d).count()),
                      static_cast<long>((d % seconds(1)).count())};
    };
    itimerspec it{ts(milliseconds(100)), ts(std::max(first, nanoseconds(1000)))};
    ::timer_settime(timer_, 0, &it, nullptr);
  }
  void disarm() {
    itimerspec it{};
    ::timer_settime(timer_, 0, &it, nullptr);
  }

 private:
  int sig_;
  timer_t timer_{};
};

}  // namespace

std::optional<WaitStatus> try_wait_task(pid_t tid, const Deadline& deadline) {
  int st;
  // Most stops come within microseconds: a few looks first, without a syscall of setup.
  for (int round = 0; round < 8; round++) {
    pid_t r = ::waitpid(tid, &st, __WALL | WNOHANG);
    if (r == tid) {
      note_stop();
      return WaitStatus(st);
    }
    if (r < 0 && errno != EINTR) fail_sys("cannot wait for task {}", tid);
    ::sched_yield();
  }
  thread_local WaitAlarm alarm;
  for (;;) {
    auto left = deadline.remaining();
    if (left == left.zero()) {
      pid_t r = ::waitpid(tid, &st, __WALL | WNOHANG);
      if (r == tid) break;
      if (r < 0 && errno != EINTR) fail_sys("cannot wait for task {}", tid);
      return std::nullopt;
    }
    alarm.arm(left);
    pid_t r = ::waitpid(tid, &st, __WALL);
    int err = errno;
    alarm.disarm();
    if (r == tid) break;
    if (r < 0 && err != EINTR) fail_errno(err, "cannot wait for task {}", tid);
  }
  note_stop();
  return WaitStatus(st);
}

void note_stop() {
  static const long kill_at = fault_number("kill-at-stop");
  static const long term_at = fault_number("term-at-stop");
  static long stops = 0;
  ++stops;
  if (stops == kill_at) ::raise(SIGKILL);
  if (stops == term_at) ::raise(SIGTERM);
}

WaitStatus wait_task(pid_t tid, const Deadline& deadline) {
  if (auto ws = try_wait_task(tid, deadline)) return *ws;
  fail("task {} did not respond within {} s ({})", tid, deadline.seconds(),
       proc::describe_state(tid));
}

bool wait_gone(pid_t tid, const Deadline& deadline) {
  auto pause = std::chrono::microseconds(50);
  for (;;) {
    int st;
    pid_t r = ::waitpid(tid, &st, __WALL | WNOHANG);
    if (r < 0 && errno == ECHILD) return true;
    if (r == tid) {
      WaitStatus ws(st);
      if (ws.gone()) return true;
      ::ptrace(PTRACE_CONT, tid, nullptr, 0);
      continue;
    }
    if (deadline.expired()) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(5000));
  }
}

WaitStatus wait_task(pid_t tid) {
  return wait_task(tid, Deadline(kTaskWait));
}

RemoteTask::RemoteTask(pid_t tid, uint64_t gadget)
    : tid_(tid), gadget_(gadget), saved_(arch::get_regs(tid)) {}

// The next stop of the task during syscall `nr`. When none comes in time, the task is
// interrupted (a syscall sleeping interruptibly ends) so that the caller can put it back.
WaitStatus RemoteTask::wait(long nr) {
  Deadline deadline(kRemoteSyscallWait);
  if (auto ws = try_wait_task(tid_, deadline)) return *ws;
  std::string state = proc::describe_state(tid_);
  ::ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr);
  for (int i = 0; i < 4; i++) {
    auto ws = try_wait_task(tid_, Deadline(std::chrono::seconds(1)));
    if (!ws || ws->gone()) break;
    if (ws->event() == PTRACE_EVENT_STOP) break;
    if (ws->stop_sig() == kSyscallStop) continue;  // the exit of the interrupted call
    ::ptrace(PTRACE_SYSCALL, tid_, nullptr, 0);
  }
  fail("task {}: syscall {} run by cryo did not finish within {} s ({})", tid_, nr,
       deadline.seconds(), state);
}

long RemoteTask::run(long nr, const std::array<uint64_t, 6>& a) {
  arch::Regs r = saved_;
  r.rax = nr;
  r.orig_rax = static_cast<uint64_t>(-1L);
  r.rdi = a[0];
  r.rsi = a[1];
  r.rdx = a[2];
  r.r10 = a[3];
  r.r8 = a[4];
  r.r9 = a[5];
  r.rip = gadget_;
  if (stack_) r.rsp = stack_;
  r.eflags &= ~0x100ULL;
  arch::set_regs(tid_, r);
  new_children_.clear();
  bool entered = false;
  int faults = 0;
  for (;;) {
    if (ptrace(PTRACE_SYSCALL, tid_, nullptr, 0) < 0)
      fail_sys("cannot resume task {} into syscall {}", tid_, nr);
    WaitStatus ws = wait(nr);
    if (ws.gone()) fail("task {} {} during remote syscall {}", tid_, ws.str(), nr);
    if (ws.stop_sig() == kSyscallStop) {
      if (!entered) {
        entered = true;
        continue;
      }
      arch::Regs after = arch::get_regs(tid_);
      if (after.rip == gadget_ + 2) return static_cast<long>(after.rax);
      fail("task {} stopped at {:#x} instead of after the syscall at {:#x}", tid_, after.rip,
           gadget_);
    }
    if (ws.event() == PTRACE_EVENT_FORK || ws.event() == PTRACE_EVENT_CLONE ||
        ws.event() == PTRACE_EVENT_VFORK) {
      unsigned long child = 0;
      ptrace(PTRACE_GETEVENTMSG, tid_, nullptr, &child);
      new_children_.push_back(static_cast<pid_t>(child));
      continue;
    }
    if (ws.event() != 0) continue;
    int sig = ws.stop_sig();
    if (is_fault(sig) && !entered) {
      // The instruction cryo borrowed cannot run (its page is gone or not executable): try
      // once more, then give up rather than loop.
      if (++faults > 1)
        fail(
            "task {}: syscall {} run by cryo faults with signal {} at {:#x}: its code at that "
            "address is not runnable",
            tid_, nr, sigabbrev_np(sig), gadget_);
      arch::set_regs(tid_, r);
      continue;
    }
    // A signal arrived before the syscall ran. The task's own signals are blocked meanwhile,
    // so it is an artifact of cryo's work and is discarded, except SIGSTOP (it cannot be
    // blocked): the stop someone asked for is noted and made when cryo is done.
    if (sig == SIGSTOP) stop_requested_ = true;
    log::debug("task {}: discarding signal {} during remote syscall {}", tid_, sig, nr);
  }
}

long RemoteTask::syscall(long nr, std::initializer_list<uint64_t> args) {
  std::array<uint64_t, 6> a{};
  std::copy_n(args.begin(), std::min(args.size(), a.size()), a.begin());
  return run(nr, a);
}

uint64_t RemoteTask::check(const char* what, long nr, std::initializer_list<uint64_t> args) {
  return SyscallResult(syscall(nr, args), tid_, nr).or_fail<uint64_t>("{} failed", what);
}

void RemoteTask::read_mem(RemoteAddr addr, void* buf, size_t len) const {
  iovec local{buf, len}, remote{reinterpret_cast<void*>(addr.addr()), len};
  ssize_t n = ::process_vm_readv(tid_, &local, 1, &remote, 1, 0);
  if (n != static_cast<ssize_t>(len))
    fail_sys("cannot read {} bytes at {} of task {}", len, addr, tid_);
}

void RemoteTask::write_mem(RemoteAddr addr, const void* buf, size_t len) const {
  iovec local{const_cast<void*>(buf), len}, remote{reinterpret_cast<void*>(addr.addr()), len};
  ssize_t n = ::process_vm_writev(tid_, &local, 1, &remote, 1, 0);
  if (n != static_cast<ssize_t>(len))
    fail_sys("cannot write {} bytes at {} of task {}", len, addr, tid_);
}

uint64_t RemoteTask::map_scratch(size_t len, uint64_t hint) {
  const int flags = MAP_PRIVATE | MAP_ANONYMOUS | (hint ? MAP_FIXED_NOREPLACE : 0);
  const auto at = check<RemoteAddr>("mmap of a scratch area", SYS_mmap, hint, len,
                                    PROT_READ | PROT_WRITE, flags, -1, 0);
  if (hint && at.addr() != hint) fail("task {}: scratch area not placed at {:#x}", tid_, hint);
  adopt_scratch(at.addr(), len);
  return scratch_;
}

void RemoteTask::unmap_scratch() {
  if (!scratch_) return;
  check("munmap of the scratch area", SYS_munmap, scratch_, scratch_len_);
  adopt_scratch(0, 0);
}

uint64_t RemoteTask::put(size_t off, const void* data, size_t len) {
  if (off + len > scratch_len_) fail("task {}: scratch area too small for {} bytes", tid_, len);
  write_mem(scratch_ + off, data, len);
  return scratch_ + off;
}

}  // namespace cryo
