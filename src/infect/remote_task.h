// Runs syscalls inside a ptrace-stopped task: the task's registers are pointed at a
// "syscall" instruction already present in its address space (the vDSO has several) and the
// task is resumed with PTRACE_SYSCALL up to the syscall's exit stop. No single-step and no
// breakpoint: the task never has a SIGTRAP pending that would kill it if cryo died (the
// tracee must have PTRACE_O_TRACESYSGOOD, so that a syscall stop left behind carries no
// signal either).
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "arch/x86_64/regs.h"
#include "infect/gadgets.h"
#include "infect/remote_ptr.h"
#include "infect/syscall_result.h"
#include "infect/wait_status.h"

namespace cryo {

class ScratchArena;

// One argument of a remote syscall as the register holding it: integers of any width (signed
// ones sign-extended, as the C library does), enums, and addresses in the task. A local
// pointer or an Fd of cryo's own means nothing in the task and does not compile.
template <typename T>
constexpr uint64_t syscall_arg(T v) {
  if constexpr (is_remote_ptr<T>)
    return v.addr();
  else if constexpr (std::is_enum_v<T>)
    return syscall_arg(static_cast<std::underlying_type_t<T>>(v));
  else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>)
    return static_cast<uint64_t>(static_cast<int64_t>(v));
  else if constexpr (std::is_integral_v<T>)
    return static_cast<uint64_t>(v);
  else
    static_assert(std::is_integral_v<T>, "a remote syscall takes integers, enums and RemotePtrs");
}

class RemoteTask {
 public:
  // `tid` must be in a ptrace-stop; its current registers are the template for each call.
  // Putting the task back as it was is the caller's: see ThreadProbe (infect/probe.h).
  RemoteTask(pid_t tid, uint64_t gadget);
  pid_t tid() const { return tid_; }
  // The thread group: the process this thread belongs to (its own tid for a leader).
  pid_t tgid() const { return tgid_ ? tgid_ : tid_; }
  void set_tgid(pid_t tgid) { tgid_ = tgid; }

  // Runs syscall `nr` with `args` (see syscall_arg) in the task.
  template <typename... A>
  SyscallResult syscall(long nr, A... args) {
    static_assert(sizeof...(A) <= 6, "a syscall takes at most 6 arguments");
    return SyscallResult(run(nr, {syscall_arg(args)...}), tid_, nr);
  }
  // Same, returning the value as an R; a failure is an Error "task T: <what> failed: <errno
  // text>". `what` names the call, e.g. "prctl(PR_GET_PDEATHSIG)".
  template <typename R = long, typename... A>
  R check(std::string_view what, long nr, A... args) {
    return syscall(nr, args...).template or_fail<R>("{} failed", what);
  }
  // To be removed once every caller passes typed arguments: the raw result (-errno), and
  // the same checked.
  long syscall(long nr, std::initializer_list<uint64_t> args);
  uint64_t check(const char* what, long nr, std::initializer_list<uint64_t> args);

  void set_gadget(uint64_t gadget) { gadget_ = gadget; }
  // The stack pointer each call runs with (0: the saved one). See infect/probe.h.
  void set_stack(uint64_t sp) { stack_ = sp; }
  uint64_t stack() const { return stack_; }
  uint64_t gadget() const { return gadget_; }
  // The registers each call starts from (then pointed at the gadget with the arguments).
  const arch::Regs& saved_regs() const { return saved_; }
  void set_saved_regs(const arch::Regs& r) { saved_ = r; }

  // New children reported by PTRACE_EVENT_FORK/CLONE during the last syscall.
  const std::vector<pid_t>& new_children() const { return new_children_; }
  // True when a SIGSTOP arrived during a remote syscall: it was held back, the caller must
  // make the stop happen once it is done with the task.
  bool stop_requested() const { return stop_requested_; }
  // For callers that resume the task themselves (infect/probe_batch.h): a SIGSTOP came.
  void note_stop_request() { stop_requested_ = true; }

  // Memory of the task.
  void read_mem(RemoteAddr addr, void* buf, size_t len) const;
  void write_mem(RemoteAddr addr, const void* buf, size_t len) const;
  template <typename T>
  T read(RemotePtr<T> p) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    read_mem(p, &v, sizeof v);
    return v;
  }
  template <typename T>
  void write(RemotePtr<T> p, const T& v) const {
    static_assert(std::is_trivially_copyable_v<T>);
    write_mem(p, &v, sizeof v);
  }
  // To be removed: the same with bare addresses.
  void read_mem(uint64_t addr, void* buf, size_t len) const {
    read_mem(RemoteAddr(addr), buf, len);
  }
  void write_mem(uint64_t addr, const void* buf, size_t len) const {
    write_mem(RemoteAddr(addr), buf, len);
  }

  // A scratch mapping in the task for syscall arguments (remote mmap; unmapped by
  // unmap_scratch()). `hint` places it, MAP_FIXED_NOREPLACE, when non-zero. Space in it is
  // handed out by a ScratchArena (infect/scratch_arena.h).
  uint64_t map_scratch(size_t len, uint64_t hint = 0);
  void unmap_scratch();
  // Takes over a scratch area the task already has (inherited from its parent).
  void adopt_scratch(uint64_t addr, size_t len) {
    scratch_ = addr;
    scratch_len_ = len;
    scratch_used_ = 0;
  }
  uint64_t scratch() const { return scratch_; }
  size_t scratch_len() const { return scratch_len_; }
  // To be removed once every caller has a ScratchArena: copies `len` bytes to scratch+off
  // and returns that address.
  uint64_t put(size_t off, const void* data, size_t len);
  uint64_t put_str(size_t off, const std::string& s) { return put(off, s.c_str(), s.size() + 1); }

 private:
  friend class ScratchArena;
  // Runs syscall `nr` with the argument registers `args`; the raw result.
  long run(long nr, const std::array<uint64_t, 6>& args);
  WaitStatus wait(long nr);
  pid_t tid_;
  pid_t tgid_ = 0;
  uint64_t gadget_;
  uint64_t stack_ = 0;
  arch::Regs saved_;
  uint64_t scratch_ = 0;
  size_t scratch_len_ = 0;
  size_t scratch_used_ = 0;        // bytes from the start handed out by arenas
  ScratchArena* arena_ = nullptr;  // the innermost open one
  std::vector<pid_t> new_children_;
  bool stop_requested_ = false;
};

// How long one remote syscall may take: they are all short, a hang means a broken task.
constexpr std::chrono::seconds kRemoteSyscallWait{30};

}  // namespace cryo
