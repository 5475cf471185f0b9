// File locks of the images (file-locks.img), taken again with -l/--file-locks as CRIU does.
// Each lock is taken inside the task that held it, through its own fd, once all its fds are
// in place: a POSIX lock then belongs to that task, an flock or OFD lock to the open file the
// task shares with the others that hold it, and /proc/locks shows the same taker as before.
#pragma once

#include <sys/types.h>

#include <map>
#include <vector>

#include "file-lock.pb.h"
#include "infect/remote_task.h"
#include "restore/plan.h"

namespace cryo::restore {

class FileLocks {
 public:
  // Reads and checks file-locks.img. Images holding locks are refused without `enabled`
  // (-l), so that no lock is dropped unseen.
  FileLocks(const Plan& plan, bool enabled);
  // Takes the locks task `t` held. Fails naming the lock, the file and who holds it now when
  // someone else took it since the dump.
  void restore(RemoteTask& rt, const TaskPlan& t) const;

 private:
  std::map<pid_t, std::vector<file_lock_entry>> by_pid_;
};

}  // namespace cryo::restore
