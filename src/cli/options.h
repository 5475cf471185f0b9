// The command line, with CRIU's option names and meanings.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cryo::cli {

struct Options {
  std::string action;
  pid_t tree = 0;
  std::string images_dir = ".";
  std::string work_dir;
  std::string log_file;
  int verbosity = 2;
  std::string pidfile;
  bool leave_running = false;
  bool leave_stopped = false;
  bool shell_job = false;
  bool file_locks = false;         // -l: dump and restore file locks
  bool ext_unix_sk = false;        // unix sockets with a peer outside the tree are allowed
  uint64_t ghost_limit = 1 << 20;  // largest deleted file saved whole (CRIU's default)
  bool link_remap = false;         // a deleted file is linked to a hidden name, not copied
  unsigned timeout = 10;           // seconds the tree has to stop (CRIU's default)
  bool restore_detached = false;
  bool display_stats = false;
  bool check_all = false;
  std::vector<std::string> features;
};

// Parses argv; throws Error with a clear message on a wrong or unsupported option.
// Returns false when the command was fully handled (help, version).
bool parse(int argc, char** argv, Options* o);
void usage();

}  // namespace cryo::cli
