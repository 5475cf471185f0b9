// `cryo dump`: freeze a tree, write its images, then kill, release or stop it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "pageserver/client.h"

namespace cryo::dump {

struct Options {
  pid_t tree = 0;
  std::string dir;
  bool leave_running = false;
  bool leave_stopped = false;
  bool shell_job = false;
  bool file_locks = false;
  bool ext_unix_sk = false;
  uint64_t ghost_limit = 1 << 20;
  bool link_remap = false;  // --link-remap: deleted files are linked, not copied
  unsigned timeout = 10;
  bool display_stats = false;
  std::string stats_json;  // --stats-json FILE (relative to the current directory)
  // --page-server: the pages go to a page server.
  bool page_server = false;
  pageserver::ClientOptions ps;
};

void run(const Options& opts);

}  // namespace cryo::dump
