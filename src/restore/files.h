// Open files. cryo opens or creates every file object of the tree once, in its own process
// (FileSet); each task then takes its copies with pidfd_getfd, so an open file shared by
// several fds or tasks stays one open file, with one offset. Then cwd, root and umask.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "base/fd.h"
#include "infect/remote_task.h"
#include "pipe-data.pb.h"
#include "restore/plan.h"
#include "restore/sockets.h"
#include "restore/tty.h"

namespace cryo::restore {

class FileSet {
 public:
  FileSet(const Plan& plan, Ttys& ttys);
  // cryo's own fd on file `id`, created on first use.
  int get(uint32_t id);
  const file_entry& entry(uint32_t id) const { return plan_.files.at(id); }
  // True the first time an epoll instance is asked for: its registrations are then made.
  bool first_fill(uint32_t id) { return filled_.insert(id).second; }
  // The restore succeeded: the socket files it bound stay (else they go with the FileSet).
  void keep() { unix_->keep(); }

 private:
  Fd open_reg(const reg_file_entry& r);
  Fd open_memfd(const memfd_file_entry& m);
  Fd open_pipe_end(uint32_t pipe_id, uint32_t flags, bool fifo, const reg_file_entry* path);
  const Plan& plan_;
  Ttys& ttys_;
  std::map<uint32_t, Fd> files_;
  struct Pipe {
    Fd rd, wr;  // cryo's ends; for a FIFO, rd is an O_RDWR handle keeping it open
    bool filled = false;
  };
  std::map<uint32_t, Pipe> pipes_;
  std::unique_ptr<UnixSockets> unix_;
  std::set<uint32_t> filled_;
  std::map<uint64_t, Fd> memfds_;  // by inode id: cryo's memfd
};

// Opens a file named in the images without blocking (a FIFO now at a regular file's path would
// block the open) and checks that it is of the kind the image says (`mode`, when known);
// O_NONBLOCK is then taken off unless `flags` have it. `what` names the file in errors.
Fd open_checked(const std::string& path, uint32_t flags, bool has_mode, uint32_t mode,
                const std::string& what);

// Puts a pipe's saved data back through `fd`, cryo's own write end (made non-blocking): data
// the pipe cannot hold fails instead of blocking for ever.
void put_pipe_data(int fd, const std::string& data, uint32_t pipe_id);

void restore_files(RemoteTask& rt, const TaskPlan& t, FileSet& files);
void restore_fs(RemoteTask& rt, const TaskPlan& t, const Plan& plan);

}  // namespace cryo::restore
