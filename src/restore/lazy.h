// `cryo restore --lazy-pages`: the tree starts without the pages of its lazy mappings
// (pages::lazy_vma); a userfaultfd of each task, registered over them (MISSING mode), goes to
// the lazy-pages daemon, which fills them on fault and in the background (pages/lazy.h).
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/fd.h"
#include "infect/remote_task.h"
#include "restore/plan.h"

namespace cryo::restore {

// The runs of `chain` outside the lazy mappings of `mm`: what a lazy restore writes itself.
std::vector<PageChain::Run> eager_runs(const PageChain& chain, const mm_entry& mm);
// The runs of `chain` in the lazy mappings of `mm` (want_lazy), or outside them.
std::vector<PageChain::Run> runs_by_laziness(const PageChain& chain, const mm_entry& mm,
                                             bool want_lazy);

// Images of a lazy dump hold no bytes for the pages left on the source: refused without
// --lazy-pages, naming the fix.
void refuse_on_source(const Plan& plan);

class LazyRestore {
 public:
  // Connects to the daemon's socket in `work_dir` before anything is created: a missing daemon
  // fails the restore while there is nothing to undo.
  explicit LazyRestore(const std::string& work_dir);
  // Right after task `t`'s address space is built, while it has cryo's credentials (a
  // userfaultfd that handles faults from kernel mode needs CAP_SYS_PTRACE): its userfaultfd,
  // made in the task and taken by cryo.
  void create(RemoteTask& rt, const TaskPlan& t);
  // Once every task is complete and no more will be forked by cryo, before release: registers
  // the lazy mappings, puts back from the images any page of them the kernel touched since
  // they were mapped, and hands each userfaultfd to the daemon. `task(i)` is task i's handle.
  void hand_over(const Plan& plan, const std::function<RemoteTask&(size_t)>& task);
  // After release: a detached watcher keeps copies of the userfaultfds (so that the daemon's
  // death leaves faults waiting, not filled with zeros) until the daemon reports every page
  // in; if the daemon's connection ends first, it kills the tree with a message.
  void watch(const Plan& plan);

 private:
  std::string path_;
  Fd sock_;
  std::map<pid_t, Fd> uffds_;
};

}  // namespace cryo::restore
