// A signal frame as rt_sigreturn reads it (x86_64), built by cryo so that a task can put
// itself back: registers, the whole xsave area and the signal mask. cryo leaves one below
// the stack pointer of every thread it runs syscalls in, so that if cryo dies, the thread's
// next instructions ("ret" into a sigreturn) restore exactly what it had.
#pragma once

#include <cstdint>
#include <string>

#include "arch/x86_64/regs.h"

namespace cryo::arch {

struct Sigframe {
  uint64_t addr = 0;  // where the frame starts: the stack pointer when "ret" runs
  std::string bytes;  // what to write there
};

// The frame for resuming at `regs` (as the kernel would resume the task: an interrupted
// syscall is set up to restart), with `xstate` (as get_xstate returns it) and `sigmask`.
// It is placed as high as possible below `top`, 64-byte aligned; its first word is
// `sigreturn_gadget`, the address of a "mov $15, %eax; syscall".
Sigframe build_sigframe(uint64_t top, const Regs& regs, const std::string& xstate, uint64_t sigmask,
                        uint64_t sigreturn_gadget);

}  // namespace cryo::arch
