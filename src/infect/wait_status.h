// A wait(2) status as a type with named questions.
#pragma once

#include <sys/ptrace.h>
#include <sys/wait.h>

#include <chrono>
#include <optional>
#include <string>

#include "base/deadline.h"

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

// The next state change of a traced task, or nothing if none comes before `deadline`.
std::optional<WaitStatus> try_wait_task(pid_t tid, const Deadline& deadline);
// Waits for the next state change of a traced task: throws naming the task and its state
// when none comes before `deadline` (the task is left as it is), or on error.
WaitStatus wait_task(pid_t tid, const Deadline& deadline);
// Same, within kTaskWait.
WaitStatus wait_task(pid_t tid);
constexpr std::chrono::seconds kTaskWait{30};

// Waits until a killed task is gone: its end reported (stops on the way are resumed), or
// reaped already. False when it is still there at the deadline.
bool wait_gone(pid_t tid, const Deadline& deadline);

// Counts the ptrace stops cryo sees. For tests of cryo's own death: CRYO_FAULT=kill-at-stop=N
// makes cryo SIGKILL itself at the N-th stop, CRYO_FAULT=term-at-stop=N sends it a SIGTERM.
void note_stop();

}  // namespace cryo
