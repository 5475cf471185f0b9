// Time namespaces of the tree (unshare(CLONE_NEWTIME), then children born in the new one).
// The root shares cryo's namespace; every other namespace a task is in, or will give its
// next children (time_for_children), gets an id and a timens-ID.img holding its clocks.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core.pb.h"
#include "infect/frozen_tree.h"

namespace cryo::dump {

class TimeNamespaces {
 public:
  // The id CRIU's images give the namespace of the root (and of cryo).
  static constexpr uint32_t kRootId = 8;

  // Reads the namespaces of every live task and thread; refuses what cannot be restored.
  explicit TimeNamespaces(const std::vector<FrozenTask>& tasks);
  // time_ns_id and, when it differs, cryo_time_for_children_ns_id of task `pid`.
  void set_ids(pid_t pid, task_kobj_ids_entry* ids) const;
  // timens-ID.img for each namespace but the root's.
  void write(const std::string& dir) const;

 private:
  struct Task {
    uint64_t own = 0, children = 0;  // namespace inodes
  };
  uint32_t id_of(uint64_t ino) const;
  bool supported_ = false;  // the kernel has time namespaces
  uint64_t root_ino_ = 0;
  std::map<pid_t, Task> tasks_;
  std::map<uint64_t, uint32_t> ids_;        // namespace inode -> id
  std::map<uint64_t, pid_t> offsets_from_;  // namespace inode -> a task whose children get it
};

}  // namespace cryo::dump
