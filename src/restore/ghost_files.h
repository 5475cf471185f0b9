// Deleted files the tree held: each is recreated from its ghost-file image before the tree
// opens or maps it (at its old path when that is free, else next to it), and unlinked again
// once every task holds it, so the tree sees an open file with no name again.
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

 private:
  void create(Plan& plan);
  struct Made {
    std::string path;
    dev_t dev;
    ino_t ino;  // removed only while the path still names this file
  };
  std::vector<Made> created_;
};

}  // namespace cryo::restore
