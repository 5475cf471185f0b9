// The tree's cgroups put back (cgroup.img, task_core_entry.cg_set), with CRIU's
// --manage-cgroups modes and --cgroup-root. Directories and properties are made before any
// task exists; each task is moved into its cgroups as soon as it exists, before it runs a
// single instruction of its own (and before its memory is restored, so that memory is charged
// to its own cgroup).
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cgroup.pb.h"
#include "proc/cgroups.h"
#include "restore/plan.h"

namespace cryo::restore {

// CRIU's modes: none (the cgroups must exist; no property is written), props (they must
// exist; their properties are written), soft (missing ones are made, with their properties;
// existing ones are left as they are), full (missing ones are made; every property is
// written), strict (none may exist; all are made with their properties), ignore (cgroups are
// left alone: every task stays in cryo's).
enum class CgroupMode { kNone, kProps, kSoft, kFull, kStrict, kIgnore };
// "none", "props", ...; throws naming the choices on any other word.
CgroupMode parse_cgroup_mode(const std::string& word);

struct CgroupOptions {
  CgroupMode mode = CgroupMode::kSoft;
  // --cgroup-root [CTL:]PATH: the dumped cgroup of hierarchy CTL (every hierarchy without one)
  // is made at PATH instead, and the tasks below it go below PATH.
  std::vector<std::pair<std::string, std::string>> roots;
};

class Cgroups {
 public:
  // Reads cgroup.img (when the dump wrote one) and makes the directories and properties the
  // mode asks for. Throws on anything that cannot be done, with the directories made so far
  // removed again.
  Cgroups(const Plan& plan, CgroupOptions opts);
  Cgroups(const Cgroups&) = delete;
  Cgroups& operator=(const Cgroups&) = delete;

  // Moves task i of the plan, just created as `pid`, into its set's cgroups, unless it is in
  // them already (born there from its parent).
  void place(size_t i, pid_t pid) const;
  // The restore succeeded: the directories made stay.
  void keep() { made_.dirs.clear(); }

 private:
  // The set task t is born in: its parent's (the root: the dumping cryo's, where it stays).
  uint32_t inherited_set(const TaskPlan& t) const;
  void relocate();
  void check_paths() const;
  void make(const std::string& hierarchy, const std::string& path, const cgroup_dir_entry& e);
  void write_props(const std::string& dir, const cgroup_dir_entry& e) const;
  const Plan& plan_;
  CgroupOptions opts_;
  proc::CgroupMounts mounts_;
  cgroup_entry img_;
  bool have_img_ = false;
  uint32_t root_set_ = 0;            // inventory_entry.root_cg_set: the dumping cryo's set
  std::map<uint32_t, size_t> sets_;  // set id -> index in img_.sets()
  // Directories made, parents first: removed again unless the restore succeeded.
  struct Made {
    std::vector<std::string> dirs;
    Made() = default;
    Made(const Made&) = delete;
    Made& operator=(const Made&) = delete;
    ~Made();
  } made_;
};

}  // namespace cryo::restore
