// Instructions cryo borrows from a task's own executable memory to run syscalls in it.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "proc/proc.h"

namespace cryo {

struct Gadgets {
  uint64_t syscall = 0;      // "syscall"
  uint64_t syscall_ret = 0;  // "syscall", register-clearing instructions only, then "ret"
  uint64_t sigreturn = 0;    // "mov $15, %eax" (or %rax), then "syscall": an rt_sigreturn
  // What a recovery frame needs (see arch/x86_64/sigframe.h).
  bool can_recover() const { return syscall_ret && sigreturn; }
};

// Looks for the gadgets in `len` bytes of code that sit at address `base`; fills only the
// ones not found yet.
void scan_gadgets(const uint8_t* code, size_t len, uint64_t base, Gadgets* g);

// The gadgets of a task: the vDSO first (always there, never written), then its executable
// file mappings. Results are remembered per mapped file and checked again before use.
Gadgets find_gadgets(pid_t pid);
// The same, from mappings the caller read.
Gadgets find_gadgets(pid_t pid, const std::vector<proc::Vma>& vmas);

// A "syscall" instruction in the task's vDSO or, failing that, another executable mapping
// (only those when `from_vdso` is false).
uint64_t find_syscall_gadget(pid_t pid, bool from_vdso = true);

}  // namespace cryo
