// Open files. cryo opens or creates every file object of the tree once, in its own process
// (FileSet, through the file's kind: file_kind.h); each task then takes its copies with
// pidfd_getfd, so an open file shared by several fds or tasks stays one open file, with one
// offset. Then cwd, root and umask.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "base/fd.h"
#include "infect/remote_task.h"
#include "restore/file_kind.h"
#include "restore/plan.h"
#include "restore/tty.h"

namespace cryo::restore {

class FileSet {
 public:
  FileSet(const Plan& plan, Ttys& ttys);
  ~FileSet();
  FileSet(const FileSet&) = delete;
  FileSet& operator=(const FileSet&) = delete;
  // cryo's own fd on file `id`, made on first use by the file's kind.
  int get(uint32_t id);
  const file_entry& entry(uint32_t id) const;
  FileKind& kind(const file_entry& f);
  // Task `t` holds its files now: cryo lets go of its own copies of those no task still to
  // come needs (a tree may hold more files than cryo may have open at once).
  void done_with(const TaskPlan& t);
  // True the first time it is asked for file `id`: its O_ASYNC is then set.
  bool first_async(uint32_t id) { return async_.insert(id).second; }
  // For a kind that makes two files at once (a socketpair): `fd` is cryo's fd on file `id`.
  void adopt(uint32_t id, Fd fd);
  const Plan& plan() const { return plan_; }
  Ttys& ttys() { return ttys_; }
  // The restore succeeded: what the kinds made for it stays (socket files they bound).
  void keep();

 private:
  const Plan& plan_;
  Ttys& ttys_;
  FileKinds kinds_;  // before files_: the files go first
  std::map<uint32_t, Fd> files_;
  std::map<uint32_t, uint32_t> users_;  // file id -> fds and files still to come that need it
  std::set<uint32_t> released_;
  std::set<uint32_t> async_;
  std::set<uint32_t> held_;  // files some task holds at an fd
  void release(uint32_t id);
};

// Opens a file named in the images without blocking (a FIFO now at a regular file's path would
// block the open) and checks that it is of the kind the image says (`mode`, when known);
// O_NONBLOCK is then taken off unless `flags` have it. `what` names the file in errors.
Fd open_checked(const std::string& path, uint32_t flags, bool has_mode, uint32_t mode,
                const std::string& what);

void restore_files(RemoteTask& rt, const TaskPlan& t, FileSet& files);
void restore_fs(RemoteTask& rt, const TaskPlan& t, const Plan& plan);

}  // namespace cryo::restore
