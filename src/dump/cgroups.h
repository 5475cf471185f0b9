// The tree's cgroups, dumped as CRIU does: every task's set of cgroups (/proc/PID/cgroup)
// gets an id (task_core_entry.cg_set; set 1 is cryo's own, inventory_entry.root_cg_set), and
// cgroup.img holds the sets and, per hierarchy, the directories below the tasks' cgroups with
// their properties. And --freeze-cgroup: the tree frozen by its freezer cgroup while it is
// seized.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cgroup.pb.h"
#include "infect/frozen_tree.h"
#include "proc/cgroups.h"

namespace cryo::dump {

struct CgroupOptions {
  bool ignore = false;  // --manage-cgroups=ignore: nothing is recorded
  // --cgroup-root [CTL:]PATH: the dumped directories of hierarchy CTL (all without one) start
  // at PATH when the tasks' cgroups are below it.
  std::vector<std::pair<std::string, std::string>> roots;
  std::string props;                          // --cgroup-props SPEC
  std::string props_file;                     // --cgroup-props-file FILE
  std::vector<std::string> dump_controllers;  // --cgroup-dump-controller NAME (repeatable)
};

// Controller -> the properties dumped for it (file names in a cgroup's directory).
using CgroupProps = std::map<std::string, std::vector<std::string>>;
// CRIU's built-in list, changed by a --cgroup-props spec ("CTL": - "strategy": "merge" or
// "replace" - "properties": ["a", "b"]). Throws on a malformed spec, naming the line.
CgroupProps cgroup_props(const std::string& spec, const std::string& where);

class CgroupSets {
 public:
  explicit CgroupSets(CgroupOptions opts);
  // The id of the set task `pid` is in (0 with --manage-cgroups=ignore). Every thread must be
  // in the leader's cgroups.
  uint32_t add(pid_t pid, const std::vector<pid_t>& tids);
  // inventory_entry.root_cg_set: cryo's own set (0 when ignored).
  uint32_t root_set() const { return opts_.ignore ? 0 : 1; }
  // cgroup.img: not written when every task is in cryo's own cgroups (as CRIU).
  void write(const std::string& dir);

 private:
  cgroup_dir_entry walk(const std::string& hierarchy, const std::string& path,
                        const std::string& name);
  CgroupOptions opts_;
  CgroupProps props_;
  proc::CgroupMounts mounts_;
  std::vector<std::vector<proc::CgroupMember>> sets_;  // sets_[id - 1]
};

// --freeze-cgroup PATH: a cgroup v1 freezer (freezer.state) or a cgroup v2 directory
// (cgroup.freeze) holding the tree. Frozen before the tree is seized, thawed once every thread
// is seized and interrupted; the destructor leaves it as it was found (thawed, or frozen when
// it was frozen already) whatever happened.
class CgroupFreezer : public TreeFreezer {
 public:
  CgroupFreezer(const std::string& path, pid_t root, unsigned timeout_s);
  ~CgroupFreezer() override;
  CgroupFreezer(const CgroupFreezer&) = delete;
  CgroupFreezer& operator=(const CgroupFreezer&) = delete;
  void freeze() override;
  void thaw() override;

 private:
  bool frozen_now() const;
  void set(bool frozen) const;
  std::string path_;
  bool v2_ = false;
  bool was_frozen_ = false;
  unsigned timeout_s_;
};

}  // namespace cryo::dump
