// The mount namespace of the tree (mountpoints-ID.img, tmpfs-dev-N.tar.gz.img). A tree either
// shares cryo's mount namespace (nothing is dumped) or has one of its own, which every task
// shares (as a container's tasks do): its mount tree is read from the root's mountinfo.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core.pb.h"
#include "infect/frozen_tree.h"
#include "mnt.pb.h"
#include "proc/mountinfo.h"

namespace cryo::dump {

// --external mnt[MOUNTPOINT]:KEY, --skip-mnt, --enable-fs.
struct MountOptions {
  std::map<std::string, std::string> external;  // mount point -> key
  std::vector<std::string> skip;                // mount points left out (with what is below)
  std::vector<std::string> enable_fs;           // file systems mounted anew at restore ("all")
};

class MountNamespaces {
 public:
  static constexpr uint32_t kHostId = 5;  // cryo's namespace (dump.cc's kobj_ids)
  static constexpr uint32_t kOwnId = 9;   // the tree's own

  // Refuses a tree whose tasks are in more than one mount namespace, or whose own namespace
  // holds a mount cryo cannot restore (naming it, its fstype and the option that helps).
  MountNamespaces(const std::vector<FrozenTask>& tasks, const MountOptions& opts);
  void set_ids(task_kobj_ids_entry* ids) const;
  bool own() const { return root_ != 0; }
  // mountpoints-ID.img and the content of each tmpfs, while the tree is frozen.
  void write(const std::string& dir) const;

 private:
  void describe(const proc::Mount& m, const std::vector<proc::Mount>& host);
  const mnt_entry* in_tree_source(const proc::Mount& m) const;
  pid_t root_ = 0;
  MountOptions opts_;
  std::vector<mnt_entry> mounts_;
};

// Kernel dev_t as CRIU writes it (minor in the low 20 bits).
inline uint32_t kernel_dev(uint32_t major, uint32_t minor) {
  return major << 20 | minor;
}

// The per-mount (MS_RDONLY, MS_NOSUID...) and superblock (MS_RDONLY, MS_SYNCHRONOUS...) flags
// of mountinfo's option lists; `rest` gets the superblock options that are not flags.
uint32_t mount_flags(const std::string& opts);
uint32_t sb_flags(const std::string& opts, std::string* rest);

}  // namespace cryo::dump
