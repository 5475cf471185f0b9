// A wait(2) status as a type with named questions.
#pragma once

#include <sys/ptrace.h>
#include <sys/wait.h>

#include <string>

namespace cryo {

class WaitStatus {
 public:
  WaitStatus() = default;
  explicit WaitStatus(int raw) : raw_(raw) {}
  int raw() const { return raw_; }
  bool exited() const { return WIFEXITED(raw_); }
  int exit_code() const { return WEXITSTATUS(raw_); }
  bool killed() const { return WIFSIGNALED(raw_); }
  int term_sig() const { return WTERMSIG(raw_); }
  bool stopped() const { return WIFSTOPPED(raw_); }
  int stop_sig() const { return stopped() ? WSTOPSIG(raw_) : 0; }
  // PTRACE_EVENT_* of a ptrace event stop, 0 otherwise.
  int event() const { return stopped() ? (raw_ >> 16) & 0xff : 0; }
  bool gone() const { return exited() || killed(); }
  std::string str() const;

 private:
  int raw_ = 0;
};

// waitpid(tid, __WALL) retrying on EINTR; throws naming the task on error.
WaitStatus wait_task(pid_t tid);

}  // namespace cryo
