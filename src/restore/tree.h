// The tree being restored: tasks created with their dumped PIDs, traced by cryo from their
// first instruction. The destructor kills every task created unless the restore released them.
#pragma once

#include <sys/ptrace.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <vector>

#include "infect/remote_task.h"
#include "restore/mounts.h"
#include "restore/namespaces.h"
#include "restore/plan.h"
#include "restore/timens.h"
#include "restore/tty.h"

namespace cryo::restore {

// ptrace options of every task a restore creates: a dying cryo takes them along, children are
// traced from their birth, and syscall stops are marked (see infect/remote_task.h).
constexpr long kTraceOptions =
    PTRACE_O_EXITKILL | PTRACE_O_TRACEFORK | PTRACE_O_TRACECLONE | PTRACE_O_TRACESYSGOOD;

class NewTree {
 public:
  // `mounts`: the tree's own mount namespace, built as soon as the root exists.
  explicit NewTree(const Plan& plan, MountTree* mounts = nullptr);
  ~NewTree();
  NewTree(const NewTree&) = delete;
  NewTree& operator=(const NewTree&) = delete;

  // Creates every task with its PID, session (with its pty as controlling terminal) and
  // group; zombies end as zombies. `shape(i)` runs for each alive task i as soon as it exists,
  // before any of its children: the address space built there is what they inherit, so
  // copy-on-write pages shared at the dump are shared again.
  void create(Ttys& ttys, const std::function<void(size_t)>& shape);
  // The remote-syscall handle of task i of the plan (alive tasks only).
  RemoteTask& task(size_t i) { return *remote_[i]; }
  // Creates the other threads of task i (its leader must be ready to clone them); returns
  // the remote handles of all its threads, the leader first.
  std::vector<RemoteTask*> create_threads(size_t i);
  // Lets every alive task run (or stay stopped).
  void release(bool leave_stopped);
  pid_t root() const { return plan_.tasks[0].pid(); }
  // --restore-sibling: the root is made a child of cryo's parent.
  void set_sibling(bool sibling) { sibling_ = sibling; }

 private:
  void fork_root();
  void fork_child(size_t i);
  // Creates a task as a child of `parent` (clone3 with set_tid `ids`: its PID in each pid
  // namespace, the innermost first, cryo's last), traced and stopped. `below`: the task is
  // in a pid namespace below its parent's.
  std::unique_ptr<RemoteTask> clone_in(RemoteTask& parent, const std::vector<pid_t>& ids,
                                       uint64_t flags, const char* what, bool below = false);
  // Makes a traced task end with wait status `status` (an exit code or a killing signal).
  void exit_task(RemoteTask& z, int status);
  void kill_all();
  const Plan& plan_;
  MountTree* mounts_;
  Namespaces ns_;
  TimeNamespaces timens_;
  std::vector<std::unique_ptr<RemoteTask>> remote_;
  std::vector<std::unique_ptr<RemoteTask>> threads_;  // non-leader threads
  std::vector<pid_t> created_;
  bool released_ = false;
  bool sibling_ = false;
  uint64_t tree_scratch_ = 0;
};

// Picks an address range of `len` bytes free of every range in `busy` (pairs start, end).
uint64_t pick_free(const std::vector<std::pair<uint64_t, uint64_t>>& busy, uint64_t len);

}  // namespace cryo::restore
