// The remote-call engine (src/infect): typed addresses and arguments, results, the scratch
// arena and the ThreadProbe scope, on a real child process seized as a dump seizes it.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "arch/x86_64/regs.h"
#include "base/error.h"
#include "infect/frozen_tree.h"
#include "infect/gadgets.h"
#include "infect/probe.h"
#include "infect/remote_ptr.h"
#include "infect/remote_task.h"
#include "infect/scratch_arena.h"
#include "proc/proc.h"

namespace cryo {
namespace {

TEST(RemotePtr, ArithmeticCountsElements) {
  RemotePtr<uint64_t> p(0x1000);
  EXPECT_EQ((p + 3).addr(), 0x1018u);
  EXPECT_EQ((p - 1).addr(), 0xff8u);
  EXPECT_EQ((p + 3) - p, 3);
  EXPECT_EQ(p - (p + 2), -2);
  RemoteAddr bytes = p;  // a typed address is also an address of bytes
  EXPECT_EQ((bytes + 3).addr(), 0x1003u);
  EXPECT_EQ(bytes.cast<uint32_t>() + 1, RemotePtr<uint32_t>(0x1004));
  EXPECT_LT(p, p + 1);
  EXPECT_FALSE(RemoteAddr());
  EXPECT_TRUE(p);
  EXPECT_EQ(fmt::format("{}", p), "0x1000");
  EXPECT_EQ(fmt::format("[{:>8}]", RemoteAddr(0xab)), "[    0xab]");
}

enum class Small : uint8_t { kA = 200 };
enum Plain { kMinusOne = -1 };

TEST(SyscallArg, WidthsSignsEnumsAndAddresses) {
  EXPECT_EQ(syscall_arg(-1), ~0ULL);  // sign-extended, as the C library passes an int
  EXPECT_EQ(syscall_arg(int8_t{-2}), ~1ULL);
  EXPECT_EQ(syscall_arg(uint32_t{0xffffffff}), 0xffffffffULL);  // unsigned: zero-extended
  EXPECT_EQ(syscall_arg(uint16_t{7}), 7u);
  EXPECT_EQ(syscall_arg(Small::kA), 200u);
  EXPECT_EQ(syscall_arg(kMinusOne), ~0ULL);
  EXPECT_EQ(syscall_arg(true), 1u);
  EXPECT_EQ(syscall_arg(RemotePtr<int>(0x7000)), 0x7000u);
}

TEST(SyscallResult, ValuesErrorsAndMessages) {
  SyscallResult ok(5, 42, SYS_dup);
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.error(), 0);
  EXPECT_EQ(ok.value<int>(), 5);
  EXPECT_EQ(ok.or_fail<RemoteAddr>("never"), RemoteAddr(5));
  // Values that look negative are addresses, not errors.
  EXPECT_TRUE(SyscallResult(-4096, 42, SYS_mmap).ok());
  EXPECT_EQ(SyscallResult(-4096, 42, SYS_mmap).value<RemoteAddr>(), RemoteAddr(~0xfffULL));
  EXPECT_THROW(SyscallResult(0x7fff00000000, 42, SYS_mmap).value<int>(), Error);  // too wide

  SyscallResult bad(-EBADF, 42, SYS_close);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.error(), EBADF);
  try {
    bad.or_fail("cannot close fd {}", 7);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              std::string("task 42: cannot close fd 7: ") + std::strerror(EBADF));
  }
  EXPECT_THROW(bad.value(), Error);
  EXPECT_EQ(bad.value_or(-1), -1);
  EXPECT_EQ(ok.value_or<uint32_t>(0), 5u);
}

// A child blocked in read() on a pipe, with SIGUSR1 blocked. Once let go it answers each byte
// with the byte plus one, then exits 0: a task whose state the engine broke cannot.
class Child {
 public:
  Child() {
    if (::pipe(to_) < 0 || ::pipe(from_) < 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGUSR1);
      sigprocmask(SIG_BLOCK, &set, nullptr);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      char c = 'r';
      if (::write(from_[1], &c, 1) != 1) _exit(2);
      while (::read(to_[0], &c, 1) == 1) {
        c++;
        if (::write(from_[1], &c, 1) != 1) _exit(2);
        if (c == 'z') _exit(0);
      }
      _exit(1);
    }
    char ready;
    if (pid_ < 0 || ::read(from_[0], &ready, 1) != 1) throw std::runtime_error("child");
  }
  ~Child() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }
  // Let go of the child: it must echo and exit 0.
  void expect_healthy() {
    char c = 'y';
    ASSERT_EQ(::write(to_[1], &c, 1), 1);
    ASSERT_EQ(::read(from_[0], &c, 1), 1);
    EXPECT_EQ(c, 'z');
    int st = 0;
    ASSERT_EQ(::waitpid(pid_, &st, 0), pid_);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st;
    pid_ = 0;
  }

 private:
  int to_[2], from_[2];
  pid_t pid_ = -1;
};

std::string sig_blocked(pid_t pid) {
  std::string s = proc::read_file(fmt::format("/proc/{}/status", pid));
  size_t p = s.find("SigBlk:");
  return p == std::string::npos ? "" : s.substr(p, s.find('\n', p) - p);
}

size_t mapping_count(pid_t pid) {
  return proc::read_maps(pid).size();
}

// The child seized and stopped as a dump does it, with its registers and mask saved.
struct Seized {
  explicit Seized(pid_t pid) : tree(pid) {
    th = &tree.tasks()[0].threads[0];
    th->regs = arch::get_regs(th->tid);
    th->regs_saved = true;
    if (ptrace(PTRACE_GETSIGMASK, th->tid, sizeof mask, &mask) < 0) fail_sys("getsigmask");
  }
  FrozenTree tree;
  FrozenThread* th;
  uint64_t mask = 0;
};

class Probe : public testing::TestWithParam<bool> {
 protected:
  // With a recovery frame (scratch below the stack), or without (a scratch mapping).
  Gadgets gadgets(pid_t pid) {
    Gadgets g = find_gadgets(pid);
    if (!GetParam()) g.sigreturn = 0;
    return g;
  }
};

TEST_P(Probe, TypedCallsArenaAndOutParameters) {
  Child child;
  const std::string mask_before = sig_blocked(child.pid());
  const size_t maps_before = mapping_count(child.pid());
  {
    Seized s(child.pid());
    ThreadProbe probe(*s.th, gadgets(child.pid()), s.mask);
    EXPECT_EQ(probe.protected_by_frame(), GetParam());
    RemoteTask& rt = probe.rt();
    EXPECT_EQ(rt.check<pid_t>("getpid", SYS_getpid), child.pid());

    ScratchArena arena(rt);
    // A path in, an fd out: the task now holds /dev/null at that fd.
    const int fd = rt.check<int>("openat", SYS_openat, AT_FDCWD, arena.put_str("/dev/null"),
                                 O_RDONLY | O_CLOEXEC);
    EXPECT_EQ(proc::read_link(fmt::format("/proc/{}/fd/{}", child.pid(), fd)), "/dev/null");
    // An out-parameter array, read back element by element.
    auto fds = arena.reserve<int>(2);
    rt.check("pipe2", SYS_pipe2, fds, O_CLOEXEC);
    const int r = rt.read(fds), w = rt.read(fds + 1);
    EXPECT_NE(r, w);
    EXPECT_EQ(proc::read_link(fmt::format("/proc/{}/fd/{}", child.pid(), r)),
              proc::read_link(fmt::format("/proc/{}/fd/{}", child.pid(), w)));
    // A value in, through the task, back out: write(2) on its pipe, read(2) into a buffer.
    auto msg = arena.put(uint64_t{0x1122334455667788});
    EXPECT_EQ(rt.check("write", SYS_write, w, msg, 8), 8);
    auto back = arena.reserve<uint64_t>();
    EXPECT_EQ(rt.check("read", SYS_read, r, back, 8), 8);
    EXPECT_EQ(rt.read(back), 0x1122334455667788u);
    for (int f : {fd, r, w}) rt.check("close", SYS_close, f);

    // The failed call names the task, the call and the errno.
    try {
      rt.check("close", SYS_close, fd);
      FAIL() << "closing a closed fd succeeded";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()),
                fmt::format("task {}: close failed: {}", child.pid(), std::strerror(EBADF)));
    }
  }
  EXPECT_EQ(sig_blocked(child.pid()), mask_before);
  EXPECT_EQ(mapping_count(child.pid()), maps_before);
  child.expect_healthy();
}

TEST_P(Probe, ArenaBoundsAlignmentAndNesting) {
  Child child;
  {
    Seized s(child.pid());
    ThreadProbe probe(*s.th, gadgets(child.pid()), s.mask);
    RemoteTask& rt = probe.rt();
    ScratchArena outer(rt);
    auto c = outer.put('x');
    auto q = outer.put(uint64_t{7});
    EXPECT_EQ(q.addr() % 16, 0u);
    EXPECT_GT(q.cast<char>(), c);
    RemoteAddr inner_first;
    {
      ScratchArena inner(rt);
      inner_first = inner.reserve<int>();
      EXPECT_GT(inner_first, RemoteAddr(q));
      // An outer arena may not hand out space while an inner one is open.
      EXPECT_THROW(outer.reserve<int>(), Error);
    }
    // The inner arena's space is free again.
    EXPECT_EQ(RemoteAddr(outer.reserve<int>()), inner_first);
    EXPECT_EQ(rt.read(q), 7u);
    EXPECT_EQ(rt.read(c), 'x');
    // More than the scratch area holds: refused before anything is written.
    const size_t left = outer.left();
    EXPECT_THROW(outer.reserve<char>(left + 1), Error);
    EXPECT_THROW(outer.reserve<uint64_t>(SIZE_MAX / 4), Error);  // n * size wraps around
    EXPECT_EQ(outer.left(), left);
    EXPECT_NO_THROW(outer.reserve<char>(left));
    EXPECT_EQ(outer.left(), 0u);
  }
  child.expect_healthy();
}

TEST_P(Probe, PutsTheTaskBackAfterAnError) {
  Child child;
  const std::string mask_before = sig_blocked(child.pid());
  const size_t maps_before = mapping_count(child.pid());
  {
    Seized s(child.pid());
    const arch::Regs before = s.th->regs;
    try {
      ThreadProbe probe(*s.th, gadgets(child.pid()), s.mask);
      probe.rt().check("close", SYS_close, -1);
      FAIL() << "close(-1) succeeded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("close failed"), std::string::npos) << e.what();
    }
    // Registers the calls did not touch on the way back are the thread's own again.
    const arch::Regs after = arch::get_regs(child.pid());
    EXPECT_EQ(after.rsp, before.rsp);
    EXPECT_EQ(after.rbx, before.rbx);
    EXPECT_EQ(after.rbp, before.rbp);
    EXPECT_EQ(after.r12, before.r12);
    EXPECT_EQ(after.r15, before.r15);
    EXPECT_EQ(after.fs_base, before.fs_base);
  }
  EXPECT_EQ(sig_blocked(child.pid()), mask_before);
  EXPECT_EQ(mapping_count(child.pid()), maps_before);
  child.expect_healthy();
}

INSTANTIATE_TEST_SUITE_P(FramedOrNot, Probe, testing::Bool(),
                         [](const auto& info) { return info.param ? "Framed" : "Mapped"; });

}  // namespace
}  // namespace cryo
