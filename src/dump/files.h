// Open files of the dumped tasks: one files.img entry per open file (fds that are one open
// file, after dup or fork, are found with kcmp), one fdinfo-N.img per task, and reg-file
// entries for paths that mappings, exe, cwd and root refer to. What each kind of file saves
// is the kind's own business (file_kind.h); the table allocates ids, finds identity and
// dispatches.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <compare>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core.pb.h"
#include "dump/file_kind.h"
#include "dump/file_locks.h"
#include "dump/ghost_files.h"
#include "dump/shmem.h"
#include "image/fdinfo.h"
#include "infect/frozen_tree.h"
#include "kernel/syscalls.h"
#include "net/tcp_repair.h"

namespace cryo::dump {

// Refuses a task using io_uring, before anything is dumped: a ring among its `maps` (naming
// its fd, if any, as dump_fds names any unsupported fd) or io_uring kernel threads
// (`io_workers`, never seized) working for it. An fd on a ring that is neither mapped nor
// worked for is refused by dump_fds.
void refuse_io_uring(const FrozenTask& t);

struct FileTableOptions {
  bool shell_job = false;    // a terminal outside the tree is the shell job's (-j)
  bool ext_unix_sk = false;  // unix sockets connected outside the tree are kept
  uint64_t ghost_limit = kDefaultGhostLimit;
  bool link_remap = false;             // deleted files are linked to a hidden name
  ShmemTable* shmem = nullptr;         // where memfd contents go
  FileLockTable* locks = nullptr;      // where the locks of each fd are noted
  std::function<bool(pid_t)> in_tree;  // whether a PID is a task of the dumped tree
  net::RepairSession* tcp = nullptr;   // --tcp-established: connections are dumped with it
  bool tcp_close = false;              // --tcp-close: connections are dumped to be closed
  bool skip_in_flight = false;         // listeners' connections not accepted yet are dropped
};

class FileTable {
 public:
  explicit FileTable(FileTableOptions o);
  ~FileTable();
  FileTable(const FileTable&) = delete;
  FileTable& operator=(const FileTable&) = delete;

  // A path-only entry (mapped file, exe, cwd, root, a FIFO's name); the same path and flags
  // share an id. A deleted file ("/path (deleted)") is saved whole, read through `proc_link`.
  uint32_t by_path(const std::string& path, uint32_t flags, const std::string& proc_link = "");
  // A memfd entry for a mapping of the memfd that `proc_link` (/proc/PID/map_files/...)
  // opens; its content is saved with the shared memory objects.
  uint32_t memfd_mapping(pid_t pid, const std::string& proc_link, const std::string& link,
                         uint32_t flags);
  // Dumps every fd of `pid`, whose ids-PID.img entry is `ids`, into fdinfo-<files_id>.img in
  // `dir`.
  void dump_fds(pid_t pid, const task_kobj_ids_entry& ids, const std::string& dir);
  // Writes files.img and the images of the kinds that have their own.
  void write(const std::string& dir);

  // For the kinds.
  const FileTableOptions& options() const { return opts_; }
  uint32_t new_id() { return next_id_++; }
  // An entry of an object no fd of the tree holds (the far end of a socket, ...).
  void add_entry(file_entry e);
  file_entry& entry(uint32_t id);
  GhostFiles& ghosts() { return ghosts_; }
  // The name to write for file `id` opened as `link` (as /proc shows it) and reachable through
  // `proc_path`: `link` itself, or for a deleted file its old name, with the file saved as a
  // ghost or kept by a new link (--link-remap). `what` names it in errors.
  std::string remap_deleted(uint32_t id, const std::string& link, const std::string& proc_path,
                            const std::string& what);
  // The dump committed: what it made on the file systems for the restore stays.
  void commit() { ghosts_.keep_links(); }
  // Dumps an open file cryo holds itself at `fd` (one received in flight in a unix socket's
  // queue, SCM_RIGHTS) like a task's fd, without an fdinfo entry; returns its file id, the id
  // of the tree's open file when it is one. `fd` must stay open until the table is written
  // (later fds are compared with it). Defined in file_kind.cc.
  uint32_t dump_held_file(FdSource& source, int fd);
  // The file id of the socket `link` ("socket:[N]") that task `pid` maps (a packet ring),
  // dumped now through an fd of the task on it; `where` names the mapping in errors. Defined
  // in file_kind.cc.
  uint32_t mapped_socket(pid_t pid, const std::string& link, const std::string& where);
  // Notes the memfd inode `st` of a memfd reachable through `proc_link` (`link` as /proc
  // names it), once; its content is saved with the shared memory objects.
  void add_memfd_inode(pid_t pid, const std::string& proc_link, const std::string& link,
                       const struct stat& st);
  // The ids of task `pid` (for cryo itself, holding files in flight: the first task's, whose
  // namespaces are cryo's).
  const task_kobj_ids_entry& task_ids(pid_t pid) const;
  // The open file that registration `slot` of epoll fd `epfd` in task `pid` watches, among
  // the open files of the tree; 0 when no fd of the tree holds it.
  uint32_t epoll_target(pid_t pid, const kernel::KcmpEpollSlot& slot) const;

 private:
  // What every fd of one open file shows alike in its fdinfo; fds that differ here are
  // different files.
  struct Key {
    uint64_t ino;
    int mnt_id;  // with ino: the inode (a mount is of one filesystem)
    uint32_t flags;
    uint64_t pos;
    uint64_t object_id;
    auto operator<=>(const Key&) const = default;
  };
  static Key key_of(const FdContext& c);
  struct Known {
    pid_t pid;
    int fd;
    uint32_t id;
  };
  // The id of the open file fd `c` is on, if an earlier fd was on it; else notes `c` as the
  // first fd of a new open file with id `fresh`.
  uint32_t identify(const FdContext& c, uint32_t fresh);
  // The id of the open file fd `c` is on; the first fd seen of an open file is described and
  // makes its entry, with its owner (`*fresh` then true).
  uint32_t file_id(FdContext& c, bool* fresh);
  FileKind& kind_of(FdContext& c);
  void note_owner(FdContext& c, file_entry* e);

  FileTableOptions opts_;
  FileKinds kinds_;
  uint32_t next_id_ = 1;
  std::map<std::pair<std::string, uint32_t>, uint32_t> paths_;
  // Per key, the first fd of each open file, in kcmp's order of open files.
  std::map<Key, std::vector<Known>> open_files_;
  std::set<Key> ahead_keys_;        // the keys the thread reading fdinfo ahead has seen
  std::deque<file_entry> entries_;  // a deque: entry() stays valid while entries are added
  static constexpr size_t kNone = SIZE_MAX;
  std::vector<size_t> index_;  // id -> entries_ index, or kNone
  std::map<pid_t, task_kobj_ids_entry> task_ids_;
  pid_t first_task_ = 0;
  std::map<uint64_t, memfd_inode_entry> memfds_;                  // by inode
  std::map<std::pair<uint64_t, uint32_t>, uint32_t> memfd_maps_;  // (inode, flags) -> id
  GhostFiles ghosts_;
};

}  // namespace cryo::dump
