// Everything a restore needs, read from the images and checked before any task is created.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core.pb.h"
#include "fs.pb.h"
#include "image/fdinfo.h"
#include "memfd.pb.h"
#include "mm.pb.h"
#include "pagemap.pb.h"
#include "pstree.pb.h"
#include "restore/page_chain.h"
#include "seccomp.pb.h"
#include "sk-packet.pb.h"
#include "tty.pb.h"

namespace cryo::restore {

struct TaskPlan {
  pstree_entry ps;
  core_entry core;                  // the leader's
  std::vector<core_entry> threads;  // one per thread of ps.threads, [0] the leader's
  bool zombie = false;
  task_kobj_ids_entry ids;
  mm_entry mm;
  fs_entry fs;
  std::vector<fdinfo_entry> fds;  // sorted by fd
  std::vector<pagemap_entry> pages;
  uint32_t pages_id = 0;
  std::shared_ptr<const PageChain> page_chain;  // where each page's bytes are
  int parent = -1;                              // index in Plan::tasks
  pid_t pid() const { return static_cast<pid_t>(ps.pid()); }
};

// Pages of a shared memory object or memfd (pagemap-shmem-SHMID.img), offsets in the object.
struct SharedPages {
  uint32_t pages_id = 0;
  std::vector<pagemap_entry> runs;
  uint64_t end = 0;  // where the last page ends
};

// Bytes queued in a pipe or FIFO (pipes-data.img, fifo-data.img).
struct PipeData {
  uint32_t size = 0;  // the pipe's capacity; 0: the default
  std::string bytes;
};

struct Plan {
  std::string dir;
  std::vector<TaskPlan> tasks;  // parents before children; tasks[0] is the root
  std::map<uint32_t, file_entry> files;
  seccomp_entry seccomp;                    // filters referred to by thread cores
  std::map<uint32_t, tty_info_entry> ttys;  // tty-info.img by id
  bool shell_job = false;                   // the images hold a terminal job
  bool own_mounts = false;  // the tree has a mount namespace of its own (restore/mounts.h)
  uint32_t mnt_ns_id = 0;   // the root's (inventory)
  std::map<std::string, int> inherit_fds;  // --inherit-fd: resource (pipe:[INO]) -> cryo's fd
  bool lazy_pages = false;                 // restore --lazy-pages: lazy mappings left empty
  bool tcp_close = false;     // connected TCP sockets are restored closed (inventory, option)
  uint32_t network_lock = 0;  // inventory_entry.network_lock_method (net::LockMethod)
  std::map<uint32_t, uint32_t> ghosts;   // file id -> ghost file id (remap-fpath.img)
  std::vector<std::string> link_remaps;  // links a --link-remap dump made: gone after restore
  std::map<uint64_t, SharedPages> shared_pages;                 // by shmid
  std::map<uint64_t, memfd_inode_entry> memfd_inodes;           // memfd.img by inode id
  std::map<std::pair<bool, uint32_t>, PipeData> pipe_data;      // by (fifo, pipe_id)
  std::map<uint32_t, std::vector<std::string>> sk_queues;       // sk-queues.img by socket file id
  std::map<uint32_t, std::vector<sk_packet_entry>> sk_packets;  // and their entries (fds, creds)
  int find(pid_t pid) const;
  const reg_file_entry& reg(uint32_t id, const char* what, pid_t pid) const;
};

// Reads and checks all images of `dir` (images are untrusted: see validate.h). `shell_job` is
// the user's -j.
Plan load_plan(const std::string& dir, bool shell_job);

// True when task `t` shares its parent's fd table (its files_id is its parent's): its fds
// are the parent's, restored once, by the parent.
bool shares_parent_files(const Plan& plan, const TaskPlan& t);

// True when task `t` is in a process group whose leader is not in the tree (it exited, its
// group lives on) and that is not the terminal job's group the root inherits: a helper task
// with the group's ID leads it while the members join, then ends.
bool needs_group_helper(const Plan& plan, const TaskPlan& t);

// Checks that the file `r` names is here as it was dumped (or its ghost image is there);
// `what` (executable, mapping, open file, ...) and the task name it in errors.
void check_file(const Plan& plan, const reg_file_entry& r, pid_t pid, const char* what);

// Waits (bounded) for the tree's PIDs held by zombies to be released; fails naming the
// process that holds a PID.
void wait_pids_free(const Plan& plan);

}  // namespace cryo::restore
