// `cryo dump`: freeze a tree, write its images, then kill, release or stop it. `cryo pre-dump`:
// the same for memory only, with the tree frozen only while its memory is sized up and
// protected for change tracking (dump/mem_track.h).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "base/hooks.h"
#include "dump/cgroups.h"
#include "dump/mounts.h"
#include "dump/namespaces.h"
#include "net/network_lock.h"
#include "pageserver/client.h"

namespace cryo::dump {

struct Options {
  pid_t tree = 0;
  std::string dir;
  std::string work_dir;  // -W: where stats-dump goes, as CRIU ("": dir)
  bool leave_running = false;
  bool leave_stopped = false;
  bool shell_job = false;
  bool file_locks = false;
  bool ext_unix_sk = false;
  uint64_t ghost_limit = 1 << 20;
  bool link_remap = false;  // --link-remap: deleted files are linked, not copied
  unsigned timeout = 10;
  bool display_stats = false;
  std::string stats_json;        // --stats-json FILE (relative to the current directory)
  bool tcp_established = false;  // connected TCP sockets are dumped (TCP_REPAIR)
  bool tcp_close = false;        // connected TCP sockets are dumped to be restored closed
  bool skip_in_flight = false;   // connections not accepted yet are dropped
  net::LockMethod network_lock = net::LockMethod::kNftables;
  bool pre_dump = false;    // cryo pre-dump: only memory, and the tree runs on
  bool track_mem = false;   // --track-mem: the next dump of the chain writes changed pages only
  std::string prev_dir;     // --prev-images-dir: the chain's previous images (relative to dir)
  bool auto_dedup = false;  // --auto-dedup: punch what this dump holds out of the parents
  const hooks::Hooks* hooks = nullptr;  // pre-dump, post-dump: RPC notify, --action-script
  // --page-server: the pages go to a page server.
  bool page_server = false;
  pageserver::ClientOptions ps;
  MountOptions mounts;  // --external mnt[], --skip-mnt, --enable-fs
  NetNsOptions net;     // --empty-ns net, --external net[]
  // --lazy-pages: the lazy mappings' pages stay in the frozen tree, served on ps.address and
  // ps.port to a lazy-pages daemon; the tree is killed once it has them.
  bool lazy_pages = false;
  CgroupOptions cgroups;      // --manage-cgroups, --cgroup-root, --cgroup-props...
  std::string freeze_cgroup;  // --freeze-cgroup PATH
};

void run(const Options& opts);

}  // namespace cryo::dump
