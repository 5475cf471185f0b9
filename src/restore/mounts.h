// The tree's own mount namespace (dump/mounts.h): the root task is created with CLONE_NEWNS,
// and the mount tree is built in its namespace by a thread of cryo's that enters it, before
// any file is opened: binds of host paths (or --root, --external mnt[KEY]:PATH), tmpfs
// refilled from their images, proc, sysfs, devpts and mqueue mounted anew, flags and
// propagation set; then pivot_root into the tree's root.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/fd.h"
#include "infect/remote_task.h"
#include "mnt.pb.h"
#include "restore/plan.h"

namespace cryo::restore {

struct MountOptions {
  std::string root;                             // --root: the root mount's source
  std::map<std::string, std::string> external;  // --external mnt[KEY]:PATH, key -> path
};

class MountTree {
 public:
  // Reads the mount images and checks every source (before any task exists).
  MountTree(const Plan& plan, const MountOptions& opts);
  ~MountTree();
  MountTree(const MountTree&) = delete;
  MountTree& operator=(const MountTree&) = delete;
  bool own() const { return !mounts_.empty(); }
  // The root task's clone flags for its mount namespace.
  uint64_t clone_flags() const;
  // Builds the tree in the mount namespace of the new root task `pid` and pivots into it;
  // from then on tree_path() names the tree's files.
  void build(RemoteTask& root);

 private:
  void build_in_namespace(pid_t pid);
  void mount_one(size_t i, const std::string& target);
  static bool kernel_made_by_tree(const mnt_entry& m);
  // The contexts of the file systems the root task opens (ptrace: on cryo's main thread),
  // then mounted by the builder.
  void open_in_tree(RemoteTask& rt);
  void mount_in_tree(size_t i, const std::string& target);
  std::string source_of(size_t i) const;
  std::string target_of(uint32_t mnt_id) const;
  std::vector<mnt_entry> mounts_;  // parents first; [0] is the root
  MountOptions opts_;
  std::string dir_;                          // the images directory (absolute)
  std::string yard_;                         // where the tree is built (a host directory)
  std::map<size_t, Fd> contexts_;            // mount index -> fsopen() fd, while building
  std::map<uint32_t, std::string> targets_;  // mnt_id -> where it is mounted, while building
};

// The path of a file of the tree as cryo opens it. A file on a mount of the tree's own
// namespace (`mnt_id` one of its mounts, or -1: unknown) is named from the tree's root, and
// opened through the root task's /proc/PID/root once the namespace is built; a file on one of
// cryo's mounts (opened before the tree left cryo's namespace) by its path from cryo's root.
std::string tree_path(const std::string& path, int mnt_id);

}  // namespace cryo::restore
