// Deleted files the tree still holds open or mapped ("ghost files", as CRIU calls them): the
// content and attributes of each such inode go to ghost-file-<id>.img, and remap-fpath.img
// tells restore which file entries are found there rather than at their path.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "base/fd.h"
#include "remap-file-path.pb.h"

namespace cryo::dump {

// CRIU's --ghost-limit default: larger deleted files are refused unless the limit is raised.
constexpr uint64_t kDefaultGhostLimit = 1 << 20;

class GhostFiles {
 public:
  void set_limit(uint64_t bytes) { limit_ = bytes; }
  // File entry `file_id` names an unlinked inode, reachable now through `proc_path`
  // (/proc/PID/fd/N, /proc/PID/map_files/..., /proc/PID/exe). `what` names it in errors.
  void add(uint32_t file_id, const std::string& proc_path, const std::string& what);
  // Writes the ghost-file images and remap-fpath.img.
  void write(const std::string& dir);
  bool empty() const { return remaps_.empty(); }

 private:
  struct Ghost {
    uint32_t id;
    Fd fd;  // opened while the tree is frozen: the inode stays reachable until written
    struct stat st;
  };
  uint64_t limit_ = kDefaultGhostLimit;
  uint32_t next_id_ = 1;
  std::map<std::pair<dev_t, ino_t>, Ghost> ghosts_;
  std::vector<remap_file_path_entry> remaps_;
};

// "/path (deleted)" -> "/path" when `link` (as /proc shows it) names a file whose last name
// is gone; empty when it does not, also for a live file really named "... (deleted)".
// `proc_path` (/proc/PID/fd/N, ...) reaches the file. A file that lost this name but keeps
// others is refused: a saved copy would part from them.
std::string deleted_path(const std::string& link, const std::string& proc_path);

}  // namespace cryo::dump
