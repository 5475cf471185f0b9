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

// CRIU's --ghost-limit default: deleted files using more disk blocks are refused unless the
// limit is raised (a sparse file counts by what it holds, not by its size).
constexpr uint64_t kDefaultGhostLimit = 1 << 20;

class GhostFiles {
 public:
  GhostFiles() = default;
  ~GhostFiles();
  GhostFiles(const GhostFiles&) = delete;
  GhostFiles& operator=(const GhostFiles&) = delete;
  void set_limit(uint64_t bytes) { limit_ = bytes; }
  // File entry `file_id` names an unlinked inode, reachable now through `proc_path`
  // (/proc/PID/fd/N, /proc/PID/map_files/..., /proc/PID/exe). `what` names it in errors.
  // Regular files keep their content; directories, FIFOs, device nodes and symlinks are
  // made again from their mode, device number or target.
  void add(uint32_t file_id, const std::string& proc_path, const std::string& what);
  // File entry `file_id` names a file whose name `gone` was removed while other hard links
  // keep it (--link-remap): a new hard link "link_remap.<id>" in its directory keeps it
  // reachable, described by entry `link_id` (a reg-file entry the caller writes).
  // Returns the link's path.
  std::string link(uint32_t file_id, uint32_t link_id, const std::string& proc_path,
                   const std::string& gone, const std::string& what);
  // Writes the ghost-file images and remap-fpath.img.
  void write(const std::string& dir);
  // The dump committed: the hard links made for --link-remap stay for the restore (else
  // they are removed with this table).
  void keep_links() { links_.clear(); }
  bool empty() const { return remaps_.empty(); }

 private:
  struct Ghost {
    uint32_t id;
    Fd fd;  // a regular file's, opened while the tree is frozen: it stays reachable
    struct stat st;
    std::string target;  // a symlink's
  };
  uint64_t limit_ = kDefaultGhostLimit;
  uint32_t next_id_ = 1;
  std::map<std::pair<dev_t, ino_t>, Ghost> ghosts_;
  std::vector<remap_file_path_entry> remaps_;
  std::vector<std::string> links_;  // made by link(), removed unless the dump commits
};

// "/path (deleted)" -> "/path" when `link` (as /proc shows it) names a file whose last name
// is gone; empty when it does not, also for a live file really named "... (deleted)".
// `proc_path` (/proc/PID/fd/N, ...) reaches the file. A file that lost this name but keeps
// others is refused (a saved copy would part from them) unless `linked` is given: it is then
// set, and the caller keeps the file by a link (--link-remap).
std::string deleted_path(const std::string& link, const std::string& proc_path,
                         bool* linked = nullptr);

}  // namespace cryo::dump
