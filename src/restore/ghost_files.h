// Deleted files the tree held: each is recreated from its ghost-file image (a regular file
// with its content, a directory, FIFO, device node or symlink) before the tree opens or maps it (at
// its old path when that is free, else next to it), and unlinked again once every task holds it, so
// the tree sees an open file with no name again.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "restore/plan.h"

namespace cryo::restore {

class GhostFiles {
 public:
  // Creates the ghost files and points the plan's file entries at them.
  explicit GhostFiles(Plan& plan);
  ~GhostFiles() { remove(); }
  GhostFiles(const GhostFiles&) = delete;
  GhostFiles& operator=(const GhostFiles&) = delete;
  // Unlinks them: called when every task holds what it needs, and on failure.
  void remove();
  // The restore succeeded: the links a --link-remap dump made are removed too (they stay for
  // another try when it fails).
  static void drop_links(const Plan& plan);

 private:
  void create(Plan& plan);
  struct Made {
    std::string path;
    dev_t dev;
    ino_t ino;  // removed only while the path still names this file
    bool dir;
  };
  std::vector<Made> created_;
};

}  // namespace cryo::restore
