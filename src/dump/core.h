// Per-task state other than memory and files: registers, signals, timers, limits,
// credentials and task attributes, as core-PID.img holds them.
#pragma once

#include <vector>

#include "core.pb.h"
#include "dump/seccomp.h"
#include "image/image.h"
#include "infect/frozen_tree.h"

namespace cryo::dump {

struct CoreExtras {
  uint64_t brk = 0;
  int dumpable = 1;
  bool thp_disabled = false;
  uint32_t umask = 0;
  uint32_t mlockall = 0;  // MCL_FUTURE (and MCL_ONFAULT) in force
};

// Reads the state of a seized, stopped process (running a few syscalls inside it): one
// core entry per thread, the leader's first with the process-wide state.
std::vector<core_entry> dump_core(FrozenTask& t, SeccompTable& seccomp, CoreExtras* extras);
// The core of a zombie: only its state and exit status.
core_entry dump_zombie_core(const FrozenTask& t);

}  // namespace cryo::dump
