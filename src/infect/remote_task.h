// Runs syscalls inside a ptrace-stopped task: the task's registers are pointed at a
// "syscall" instruction already present in its address space (the vDSO has several) and the
// task is resumed with PTRACE_SYSCALL up to the syscall's exit stop. No single-step and no
// breakpoint: the task never has a SIGTRAP pending that would kill it if cryo died (the
// tracee must have PTRACE_O_TRACESYSGOOD, so that a syscall stop left behind carries no
// signal either).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "arch/x86_64/regs.h"
#include "infect/gadgets.h"
#include "infect/wait_status.h"

namespace cryo {

class RemoteTask {
 public:
  // `tid` must be in a ptrace-stop; its current registers are the ones put back by
  // restore_regs() and used as the template for each call.
  RemoteTask(pid_t tid, uint64_t gadget);
  pid_t tid() const { return tid_; }
  // The thread group: the process this thread belongs to (its own tid for a leader).
  pid_t tgid() const { return tgid_ ? tgid_ : tid_; }
  void set_tgid(pid_t tgid) { tgid_ = tgid; }

  // Executes syscall `nr`; returns the raw result (-errno on failure).
  long syscall(long nr, std::initializer_list<uint64_t> args = {});
  // Same, throwing an Error naming `what` when the result is an error.
  uint64_t check(const char* what, long nr, std::initializer_list<uint64_t> args = {});

  void set_gadget(uint64_t gadget) { gadget_ = gadget; }
  // The stack pointer each call runs with (0: the saved one). See infect/probe.h.
  void set_stack(uint64_t sp) { stack_ = sp; }
  uint64_t gadget() const { return gadget_; }
  const arch::Regs& saved_regs() const { return saved_; }
  void set_saved_regs(const arch::Regs& r) { saved_ = r; }
  void restore_regs();

  // New children reported by PTRACE_EVENT_FORK/CLONE during the last syscall.
  const std::vector<pid_t>& new_children() const { return new_children_; }
  // True when a SIGSTOP arrived during a remote syscall: it was held back, the caller must
  // make the stop happen once it is done with the task.
  bool stop_requested() const { return stop_requested_; }

  // Memory of the task.
  void read_mem(uint64_t addr, void* buf, size_t len) const;
  void write_mem(uint64_t addr, const void* buf, size_t len) const;

  // A scratch mapping in the task for syscall arguments (remote mmap; unmapped by
  // unmap_scratch()). `hint` places it, MAP_FIXED_NOREPLACE, when non-zero.
  uint64_t map_scratch(size_t len, uint64_t hint = 0);
  void unmap_scratch();
  // Takes over a scratch area the task already has (inherited from its parent).
  void adopt_scratch(uint64_t addr, size_t len) {
    scratch_ = addr;
    scratch_len_ = len;
  }
  uint64_t scratch() const { return scratch_; }
  size_t scratch_len() const { return scratch_len_; }
  // Copies `len` bytes to scratch+off and returns that address.
  uint64_t put(size_t off, const void* data, size_t len);
  uint64_t put_str(size_t off, const std::string& s) { return put(off, s.c_str(), s.size() + 1); }

 private:
  pid_t tid_;
  pid_t tgid_ = 0;
  WaitStatus wait(long nr);
  uint64_t gadget_;
  uint64_t stack_ = 0;
  arch::Regs saved_;
  uint64_t scratch_ = 0;
  size_t scratch_len_ = 0;
  std::vector<pid_t> new_children_;
  bool stop_requested_ = false;
};

// How long one remote syscall may take: they are all short, a hang means a broken task.
constexpr std::chrono::seconds kRemoteSyscallWait{30};

}  // namespace cryo
