// Time namespaces of the tree being restored: each task enters the namespace it was in and
// gets the one its next children are born in, made anew with the dumped clocks (which go on
// from where they were, as CRIU does) the first time a task needs it.
#pragma once

#include <map>
#include <string>

#include "infect/remote_task.h"
#include "restore/plan.h"
#include "timens.pb.h"

namespace cryo::restore {

class TimeNamespaces {
 public:
  // Reads timens-ID.img of every namespace the tasks name (before any task exists).
  explicit TimeNamespaces(const Plan& plan);
  // Puts the new task `t` (single-threaded, just created) in its namespaces.
  void place(RemoteTask& rt, const TaskPlan& t);

 private:
  // Makes a new namespace the task's next children get, with the clocks of namespace `id`.
  void create(RemoteTask& rt, uint32_t id);
  void enter(RemoteTask& rt, const std::string& path);
  uint64_t inode_of(const std::string& path) const;
  std::map<uint32_t, timens_entry> clocks_;
  std::map<uint32_t, std::string> made_;  // namespace id -> an nsfs path that names it
};

}  // namespace cryo::restore
