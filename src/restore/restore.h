// `cryo restore`: recreate a tree from its images.
#pragma once

#include <map>
#include <string>

#include "base/hooks.h"
#include "restore/cgroups.h"
#include "restore/mounts.h"
#include "restore/namespaces.h"

namespace cryo::restore {

struct Options {
  std::string dir;
  bool detached = false;
  std::map<std::string, int> inherit_fds;  // --inherit-fd: resource -> cryo's fd
  bool sibling = false;  // --restore-sibling: the root is a child of cryo's parent
  bool leave_stopped = false;
  bool shell_job = false;
  bool file_locks = false;
  bool ext_unix_sk = false;
  std::string pidfile;
  bool display_stats = false;
  std::string stats_json;               // --stats-json FILE (relative to the current directory)
  bool tcp_established = false;         // connected TCP sockets are restored
  bool tcp_close = false;               // connected TCP sockets are restored closed
  std::string network_lock;             // --network-lock; "" for the dump's method
  bool lazy_pages = false;              // --lazy-pages: a lazy-pages daemon fills the memory
  std::string work_dir;                 // -W: the daemon's socket, stats-restore ("": dir)
  const hooks::Hooks* hooks = nullptr;  // pre-restore ... post-resume: RPC, --action-script
  MountOptions mounts;                  // --root, --external mnt[KEY]:PATH
  NetNsOptions net;                     // --empty-ns net, --inherit-fd, --join-ns net:PATH
  CgroupOptions cgroups;                // --manage-cgroups, --cgroup-root
};

// Returns cryo's exit status: 0 when detached, else the root task's exit status.
int run(const Options& opts);

}  // namespace cryo::restore
