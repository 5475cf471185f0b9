// Namespaces of the tree being restored (time namespaces apart: restore/timens.h). The first
// task of each namespace that is not cryo's is created with the kind's CLONE_NEW* flag and
// fills it (host name...); its descendants inherit it. A task in a nested pid namespace is
// created with its PID in every namespace from its own up to cryo's (clone3's set_tid).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/fd.h"
#include "infect/remote_task.h"
#include "restore/ipc_ns.h"
#include "restore/plan.h"
#include "utsns.pb.h"

namespace cryo::restore {

// The root's network namespace, as CRIU: --empty-ns net makes a new one whatever the images
// hold; a namespace the dump named external (--external net[INODE]:KEY) is the one given by
// --inherit-fd fd[N]:KEY; --join-ns net:PATH makes the tree join PATH instead.
struct NetNsOptions {
  bool empty = false;
  std::map<std::string, int> inherit;  // --inherit-fd fd[N]:KEY: key -> cryo's fd N
  std::string join;                    // --join-ns net:PATH (a file, or a PID's namespace)
  std::string join_uts;                // --join-ns uts:PATH: the root joins it, names untouched
};

class Namespaces {
 public:
  // Reads the namespace images and checks that every task's namespaces can be made (before
  // any task exists); refuses kinds cryo cannot restore yet, naming them.
  explicit Namespaces(const Plan& plan, const NetNsOptions& net = {});
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
  // Fills the namespaces task i made when it was created (a single-threaded, new task), or
  // for the root, joins the network namespace given for it.
  void fill(RemoteTask& rt, size_t i) const;

 private:
  // What the root does of its own network namespace `id`: the CLONE_NEWNET flag to make a new
  // one, or 0 and net_join_fd_ set to join one.
  uint64_t plan_net(uint32_t id, const NetNsOptions& net);
  const Plan& plan_;
  Fd net_join_;           // the network namespace the root joins (--join-ns)
  int net_join_fd_ = -1;  // cryo's fd of it (net_join_, or an --inherit-fd one)
  std::string net_key_;   // the --inherit-fd key it is given by
  Fd uts_join_;           // the UTS namespace the root joins (--join-ns uts:PATH)
  std::vector<uint64_t> flags_;
  std::vector<bool> unshare_;
  std::map<uint32_t, utsns_entry> uts_;   // by namespace id
  std::map<uint32_t, IpcNamespace> ipc_;  // by namespace id
};

}  // namespace cryo::restore
