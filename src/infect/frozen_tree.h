// The dumped tree, seized with ptrace and stopped. Its destructor puts every task back as it
// was (running, or stopped if it was stopped) unless the dump committed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <vector>

#include "arch/x86_64/regs.h"
#include "base/deadline.h"
#include "infect/wait_status.h"
#include "proc/proc.h"

namespace cryo {

// One seized thread, with the registers it had: they are put back before release.
struct FrozenThread {
  pid_t tid = 0;
  arch::Regs regs{};
  bool regs_saved = false;
  bool stop_requested = false;  // a SIGSTOP came while cryo ran syscalls in it
};

struct FrozenTask {
  pid_t pid = 0;
  pid_t ppid = 0, pgid = 0, sid = 0;
  bool zombie = false;
  bool stopped = false;  // in group-stop when seized
  int stop_sig = 0;      // the signal of that stop: SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU
  int exit_status = 0;   // wait status of a zombie
  proc::Stat stat;
  std::vector<pid_t> children;
  std::vector<FrozenThread> threads;  // threads[0] is the leader (tid == pid)
  std::vector<pid_t> io_workers;      // io_uring kernel threads: listed, never seized
  // The mappings, read once after the freeze by the dump (cryo's probes put back every
  // mapping they make, so they stay true until the tree runs again).
  std::vector<proc::Vma> maps;
};

// Holds the whole tree still while it is seized (--freeze-cgroup): frozen, no task can fork
// or clone while cryo walks it. thaw() comes once every thread is seized and interrupted, so
// that each can reach its ptrace stop.
class TreeFreezer {
 public:
  virtual ~TreeFreezer() = default;
  virtual void freeze() = 0;
  virtual void thaw() = 0;
};

class FrozenTree {
 public:
  // Seizes and stops `root` and all its descendants. Refuses a traced task, naming its tracer,
  // and fails when the tree does not stop within `timeout_s` seconds (CRIU's --timeout).
  explicit FrozenTree(pid_t root, unsigned timeout_s = 10, TreeFreezer* freezer = nullptr);
  ~FrozenTree();
  FrozenTree(const FrozenTree&) = delete;
  FrozenTree& operator=(const FrozenTree&) = delete;

  std::vector<FrozenTask>& tasks() { return tasks_; }
  FrozenTask* find(pid_t pid);
  bool contains(pid_t pid) const;

  // Ends the dump: kill the tree, or let it run (leave_running), or leave it stopped.
  enum class End { kKill, kRun, kStop };
  void commit(End how);
  // When the tree stopped being frozen for its tasks: killed (SIGKILL sent; the teardown of
  // their memory that follows is no pause anybody sees), resumed or left stopped.
  std::chrono::steady_clock::time_point ended() const { return ended_; }

 private:
  // Returns the signal of the stop the thread was found in (SIGTRAP: it was not stopped).
  int seize(pid_t tid);
  WaitStatus wait_stop(pid_t tid);
  void seize_threads(FrozenTask& t);
  // With a freezer: every thread of the frozen tree seized and interrupted, not waited for.
  void preseize(pid_t root);
  FrozenThread* find_thread(pid_t tid);
  void release(bool stop_all);
  std::vector<FrozenTask> tasks_;
  std::vector<pid_t> seized_;
  std::vector<pid_t> preseized_;  // seized and interrupted, their stop not waited for yet
  pid_t unstopped_ = 0;           // seized, but never stopped: detached only when cryo exits
  unsigned timeout_s_;
  Deadline deadline_;
  bool committed_ = false;
  std::chrono::steady_clock::time_point ended_{};
};

}  // namespace cryo
