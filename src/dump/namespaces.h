// The namespaces of the tree, kind by kind (time namespaces apart: dump/timens.h). Each
// namespace gets an id by its nsfs inode: cryo's own keep the ids CRIU's images give them
// (1 to 7), the others numbers from 9 up. A namespace other than cryo's must be made by the
// first task of the tree in it (the root, or a task whose parent is elsewhere): the restore
// creates that task with the kind's CLONE_NEW* flag and its descendants inherit it. Kinds
// cryo cannot restore yet are refused, naming the kind (see kNsKinds).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core.pb.h"
#include "dump/ipc_ns.h"
#include "infect/frozen_tree.h"
#include "pstree.pb.h"

namespace cryo::dump {

struct NsKind {
  const char* name;  // as in /proc/PID/ns/NAME
  uint32_t cflag;    // CLONE_NEW*
  uint32_t cryo_id;  // the id of cryo's own namespace of this kind in the images
  void (task_kobj_ids_entry::*set_id)(uint32_t);
  // nullptr: a tree may have its own namespaces of this kind. Else why not (yet), for the
  // message that refuses it.
  const char* refused;
};

// Every kind but time, in the order a restore creates them (user first).
extern const NsKind kNsKinds[7];

class Namespaces {
 public:
  // Reads every task's namespaces; refuses what cannot be restored.
  explicit Namespaces(const std::vector<FrozenTask>& tasks);
  // The namespace ids of task `pid` (time's apart).
  void set_ids(pid_t pid, task_kobj_ids_entry* ids) const;
  // cryo_ns_pid and cryo_ns_tid of a task in a nested pid namespace.
  void set_pids(const FrozenTask& t, pstree_entry* e) const;
  // utsns-ID.img of every UTS namespace but cryo's, ipcns-var-ID.img of every IPC one.
  void write(const std::string& dir) const;

 private:
  struct Task {
    std::vector<uint64_t> ns;              // inode by kind (kNsKinds' order)
    uint64_t pid_for_children = 0;         // when not ns[pid]: after unshare(CLONE_NEWPID)
    std::vector<pid_t> pids;               // NSpid below cryo's namespace (empty: cryo's)
    std::vector<std::vector<pid_t>> tids;  // the same for each thread
  };
  uint32_t id_of(size_t kind, uint64_t ino) const;
  std::map<pid_t, Task> tasks_;
  std::vector<uint64_t> mine_;                     // cryo's inode by kind
  std::vector<std::map<uint64_t, uint32_t>> ids_;  // by kind: inode -> id
  std::map<uint64_t, pid_t> uts_first_;            // a task in each new UTS namespace
  std::vector<IpcNamespace> ipc_;                  // each new IPC namespace
};

}  // namespace cryo::dump
