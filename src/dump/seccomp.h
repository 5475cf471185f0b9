// Seccomp state of dumped threads: the mode per thread, and filter chains in seccomp.img.
#pragma once

#include <sys/types.h>

#include <string>

#include "core.pb.h"
#include "seccomp.pb.h"

namespace cryo::dump {

class SeccompTable {
 public:
  // Records the mode (and filters) of thread `tid` whose /proc status says `mode`.
  void dump_thread(pid_t tid, int mode, thread_core_entry* thc);
  void write(const std::string& dir);

 private:
  seccomp_entry entry_;
};

}  // namespace cryo::dump
