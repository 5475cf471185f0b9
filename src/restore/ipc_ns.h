// An IPC namespace the tree made: read from ipcns-var-ID.img, ipcns-sem-ID.img and
// ipcns-msg-ID.img before any task exists, filled once its first task made it (by a
// short-lived thread of cryo that joins it). Its shared memory segments are restore/sysv_shm.h's.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "image/image.h"
#include "ipc-msg.pb.h"
#include "ipc-sem.pb.h"
#include "ipc-var.pb.h"

namespace cryo::restore {

// Writes `value` to the sysctl file `path` (of the calling thread's IPC namespace).
void write_ipc_sysctl(const char* path, const std::string& value);

class IpcNamespace {
 public:
  // Reads namespace `id`'s images; `root`: the root task makes it (only that one may hold
  // shared memory segments). Fails naming what cryo cannot restore.
  IpcNamespace(const std::string& dir, uint32_t id, bool root);
  IpcNamespace(const IpcNamespace&) = delete;
  IpcNamespace& operator=(const IpcNamespace&) = delete;
  // Fills the (new, empty) IPC namespace task `pid` is in: semaphore sets and message queues
  // with their ids, then the settings.
  void fill(pid_t pid) const;

 private:
  struct SemSet {
    ipc_sem_entry e;
    std::vector<uint16_t> values;
  };
  struct Message {
    long type;
    std::string_view text;  // in msg_image_
  };
  struct Queue {
    ipc_msg_entry e;
    std::vector<Message> messages;
  };
  void load_sems(const std::string& dir);
  void load_msgs(const std::string& dir);
  void make_sems() const;
  void make_queues() const;

  uint32_t id_;
  bool has_shm_ = false;  // kernel.shm_rmid_forced is then set by restore/sysv_shm.h
  ipc_var_entry vars_;
  std::vector<SemSet> sems_;
  std::optional<image::Reader> msg_image_;
  std::vector<Queue> queues_;
};

}  // namespace cryo::restore
