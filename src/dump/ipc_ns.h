// An IPC namespace the tree made (not cryo's): its sysctls go to ipcns-var-ID.img. It is read
// by a short-lived thread of cryo that joined it (kernel::in_namespace): SysV calls and the
// sysctl files of /proc/sys answer for the calling thread's IPC namespace.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "ipc-var.pb.h"

namespace cryo::dump {

class IpcNamespace {
 public:
  // Reads namespace ipc:[ino] (id `id` in the images) through task `pid`, which is in it;
  // refuses what cannot be dumped yet, naming it.
  IpcNamespace(pid_t pid, uint64_t ino, uint32_t id);
  void write(const std::string& dir) const;

 private:
  pid_t pid_;
  uint64_t ino_;
  uint32_t id_;
  ipc_var_entry vars_;
};

}  // namespace cryo::dump
