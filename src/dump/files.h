// Open files of the dumped tasks: one files.img entry per open file (shared ones found with
// kcmp), one fdinfo-N.img per task, and reg-file entries for paths that mappings, exe, cwd
// and root refer to.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "dump/event_files.h"
#include "dump/file_locks.h"
#include "dump/ghost_files.h"
#include "dump/pipes.h"
#include "dump/shmem.h"
#include "dump/sockets.h"
#include "dump/tty.h"
#include "image/fdinfo.h"

namespace cryo::dump {

// Refuses a task using io_uring, before anything is dumped: an fd on a ring (the same message
// dump_fds gives for any unsupported fd), a ring still mapped after its fd was closed, or
// io_uring kernel threads (`io_workers`, never seized) working for it.
void refuse_io_uring(pid_t pid, const std::vector<pid_t>& io_workers);

class FileTable {
 public:
  // A path-only entry (mapped file, exe, cwd, root); the same path and flags share an id.
  // A deleted file ("/path (deleted)") is saved whole, read through `proc_link`.
  uint32_t by_path(const std::string& path, uint32_t flags, const std::string& proc_link = "");
  // A memfd entry for a mapping of the memfd that `proc_link` (/proc/PID/map_files/...)
  // opens; its content is saved with the shared memory objects.
  uint32_t memfd_mapping(pid_t pid, const std::string& proc_link, const std::string& link,
                         uint32_t flags);
  // Dumps every fd of `pid` into fdinfo-<files_id>.img in `dir`. With shell_job false, a
  // terminal that is not a pty pair of the tree is refused (by write()).
  void dump_fds(pid_t pid, uint32_t files_id, const std::string& dir, bool shell_job);
  // Writes files.img and the images of the kinds that have their own (pipe data, sockets,
  // memfds, terminals, ghost files). With ext_unix_sk, unix sockets connected outside the
  // tree are kept (see UnixSockets::finish). `in_tree` says whether a PID is a task of the
  // dumped tree.
  void write(const std::string& dir, bool ext_unix_sk, const std::function<bool(pid_t)>& in_tree);
  // Where memfd contents go (dumped with the shared memory objects).
  void set_shmem(ShmemTable* shmem) { shmem_ = shmem; }
  // Where the locks of each fd are noted (and refused without -l).
  void set_locks(FileLockTable* locks) { locks_ = locks; }
  // True when some fd of the tree is a terminal other than a pty pair of the tree.
  bool saw_external_tty() const { return ttys_.has_external(); }
  // The largest deleted file saved (--ghost-limit).
  void set_ghost_limit(uint64_t bytes) { ghosts_.set_limit(bytes); }

 private:
  struct Known {
    pid_t pid;
    int fd;
    uint32_t id;
  };
  uint32_t next_id_ = 1;
  std::map<std::pair<std::string, uint32_t>, uint32_t> paths_;
  std::vector<Known> fds_;  // one representative per open file, for kcmp
  std::vector<file_entry> entries_;
  TtyTable ttys_;
  bool shell_job_ = false;
  PipeData pipes_;
  ShmemTable* shmem_ = nullptr;
  void add_memfd_inode(pid_t pid, const std::string& proc_link, const std::string& link,
                       const struct stat& st);
  struct Detached {
    size_t entry;  // in entries_
    DetachedTarget target;
    pid_t pid;
    int epfd;
  };
  void resolve_detached_epoll();
  std::vector<Detached> detached_;
  std::map<uint64_t, memfd_inode_entry> memfds_;                  // by inode
  std::map<std::pair<uint64_t, uint32_t>, uint32_t> memfd_maps_;  // (inode, flags) -> id
  FileLockTable* locks_ = nullptr;
  UnixSockets unix_;
  GhostFiles ghosts_;
};

}  // namespace cryo::dump
