// Namespaces of the tree being restored (time namespaces apart: restore/timens.h). The first
// task of each namespace that is not cryo's is created with the kind's CLONE_NEW* flag and
// fills it (host name...); its descendants inherit it. A task in a nested pid namespace is
// created with its PID in every namespace from its own up to cryo's (clone3's set_tid).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <vector>

#include "infect/remote_task.h"
#include "restore/ipc_ns.h"
#include "restore/plan.h"
#include "utsns.pb.h"

namespace cryo::restore {

class Namespaces {
 public:
  // Reads the namespace images and checks that every task's namespaces can be made (before
  // any task exists); refuses kinds cryo cannot restore yet, naming them.
  explicit Namespaces(const Plan& plan);
  // The CLONE_NEW* flags task i is created with.
  uint64_t clone_flags(size_t i) const { return flags_[i]; }
  // True when task i's parent must unshare(CLONE_NEWPID) before creating it: the parent's
  // next children are born in the namespace task i is the init of, as when dumped.
  bool parent_unshares(size_t i) const { return unshare_[i]; }
  // True when task i is in a pid namespace below its parent's.
  bool below_parent(size_t i) const;
  // clone3's set_tid for thread k of task i (k = 0: the task itself): its ID in each pid
  // namespace, the innermost first.
  std::vector<pid_t> set_tid(size_t i, size_t k) const;
  // The PID that names task `pid` of the plan in task i's pid namespace, as a process group
  // or session id the task may give setpgid: 0 when `pid` is not in that namespace.
  pid_t pid_seen_by(size_t i, pid_t pid) const;
  // Fills the namespaces task i made when it was created (a single-threaded, new task).
  void fill(RemoteTask& rt, size_t i) const;

 private:
  const Plan& plan_;
  std::vector<uint64_t> flags_;
  std::vector<bool> unshare_;
  std::map<uint32_t, utsns_entry> uts_;   // by namespace id
  std::map<uint32_t, IpcNamespace> ipc_;  // by namespace id
};

}  // namespace cryo::restore
