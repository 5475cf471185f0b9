// An IPC namespace the tree made (not cryo's): its sysctls go to ipcns-var-ID.img, its SysV
// semaphore sets to ipcns-sem-ID.img and message queues to ipcns-msg-ID.img; its shared
// memory segments are dumped by dump/sysv_shm.h, in the namespace (run()). It is read by a
// short-lived thread of cryo that joined it (kernel::in_namespace): SysV calls and the sysctl
// files of /proc/sys answer for the calling thread's IPC namespace.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ipc-msg.pb.h"
#include "ipc-sem.pb.h"
#include "ipc-var.pb.h"

namespace cryo::dump {

class IpcNamespace {
 public:
  // Reads namespace ipc:[ino] (id `id` in the images) through task `pid`, which is in it;
  // `root`: the root task is in it (only that one may hold shared memory segments). Refuses
  // what cannot be dumped yet, naming it.
  IpcNamespace(pid_t pid, uint64_t ino, uint32_t id, bool root);
  uint32_t id() const { return id_; }
  // The shared memory segments of the namespace, by id.
  const std::vector<uint32_t>& segments() const { return shm_; }
  // Runs `fn` in a thread of cryo in the namespace.
  void run(const std::function<void()>& fn) const;
  void write(const std::string& dir) const;

 private:
  struct SemSet {
    ipc_sem_entry e;
    std::vector<uint16_t> values;
  };
  struct Message {
    ipc_msg m;
    std::string text;
  };
  struct Queue {
    ipc_msg_entry e;
    std::vector<Message> messages;  // oldest first
  };
  pid_t pid_;
  uint64_t ino_;
  uint32_t id_;
  ipc_var_entry vars_;
  std::vector<uint32_t> shm_;
  std::vector<SemSet> sems_;
  std::vector<Queue> queues_;
};

}  // namespace cryo::dump
