// A scope in which cryo runs syscalls inside one seized thread of a tree being dumped, made
// so that the thread survives cryo's death at any instant of it:
//  - below the thread's stack pointer (past the red zone) cryo writes a signal frame holding
//    the thread's registers, xsave area and signal mask (arch/x86_64/sigframe.h);
//  - every call runs with that frame as its stack, from a "syscall" that is followed only by
//    register clearing and a "ret" (the vDSO has one), and the "ret" goes to an rt_sigreturn;
//    between calls the thread is parked on that rt_sigreturn;
//  - so whatever state cryo leaves the thread in, resuming it (which the kernel does when
//    the tracer dies) finishes at most one harmless syscall and then restores everything.
// The end of the scope puts back the mask, the registers and the bytes under the frame, and
// returns the thread to an ordinary ptrace stop. Where no frame can be made (no gadgets, no
// room below the stack pointer, a shadow stack), calls run with a scratch mapping instead, as
// before, and the log says that this thread is not protected.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "infect/frozen_tree.h"
#include "infect/gadgets.h"
#include "infect/remote_task.h"
#include "proc/proc.h"

namespace cryo {

class ThreadProbe {
 public:
  // `th.regs` must hold the thread's own registers and `sigmask` its own mask. `maps`, when
  // given, are the task's mappings (read once for all its threads).
  ThreadProbe(FrozenThread& th, const Gadgets& gadgets, uint64_t sigmask,
              const std::vector<proc::Vma>* maps = nullptr);
  ~ThreadProbe();
  ThreadProbe(const ThreadProbe&) = delete;
  ThreadProbe& operator=(const ThreadProbe&) = delete;

  // Calls in the thread; their arguments go in a ScratchArena on it (kScratch bytes with a
  // frame, a page without).
  RemoteTask& rt() { return rt_; }
  bool protected_by_frame() const { return framed_; }
  // The task's mappings (as given, or read once).
  const std::vector<proc::Vma>& maps();
  // A second frame, below everything the probe uses, for a chain: a thread that "ret"s into
  // it (the returned address as its stack pointer) goes on at `regs` with every signal
  // blocked; `regs` usually end in a "ret" into the first frame (RemoteTask::stack()).
  // Nothing without a first frame or room in the thread's stack.
  std::optional<uint64_t> chain_frame(const arch::Regs& regs);
  // The largest out-parameter: every signal's disposition at once (64 x 32 bytes), read back
  // with one process_vm_readv.
  static constexpr size_t kScratch = 2048;

 private:
  bool place_frame(const Gadgets& gadgets, uint64_t sigmask);
  void end();
  FrozenThread& th_;
  const std::vector<proc::Vma>* maps_;
  std::vector<proc::Vma> own_maps_;  // when none were given
  std::string xstate_;
  uint64_t sigreturn_ = 0;
  RemoteTask rt_;
  uint64_t sigmask_;
  bool framed_ = false;
  bool masked_ = false;
  RemoteAddr saved_at_;  // the bytes the frame and scratch cover, put back at the end
  std::string saved_bytes_;
};

}  // namespace cryo
