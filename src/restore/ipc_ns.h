// An IPC namespace the tree made: read from ipcns-var-ID.img before any task exists, filled
// once its first task made it (by a short-lived thread of cryo that joins it).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "ipc-var.pb.h"

namespace cryo::restore {

class IpcNamespace {
 public:
  // Reads namespace `id`'s images; fails naming what cryo cannot restore.
  IpcNamespace(const std::string& dir, uint32_t id);
  // Fills the (new, empty) IPC namespace task `pid` is in.
  void fill(pid_t pid) const;

 private:
  uint32_t id_;
  ipc_var_entry vars_;
};

}  // namespace cryo::restore
