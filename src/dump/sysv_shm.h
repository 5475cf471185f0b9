// SysV shared memory segments the tree attaches (shmat), and in an IPC namespace of the tree
// every segment of it. Each segment is dumped once, into ipcns-shm-<ipc ns id>.img: its id,
// key, owners, mode and size, followed by its content; each attachment is a VMA of its task
// (status SYSVIPC, shmid the segment's id).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "mm.pb.h"
#include "proc/proc.h"

namespace cryo::dump {

// True for a VMA that is an attachment of a SysV segment ("/SYSV<key> (deleted)").
bool is_sysv_attachment(const proc::Vma& v);

class SysvShmTable {
 public:
  // Notes the attachments among the VMAs of task `pid`, in IPC namespace `ipc_ns_id`.
  void add(pid_t pid, const mm_entry& mm, uint32_t ipc_ns_id);
  // Checks that the tree alone attaches each segment and writes the image of namespace
  // `ipc_ns_id`, with the segments `unattached` too (those of an IPC namespace of the tree
  // that no task attaches). Runs in that namespace. Returns the pages of content written.
  uint64_t dump(const std::string& dir, uint32_t ipc_ns_id,
                const std::vector<uint32_t>& unattached = {});

 private:
  struct Segment {
    pid_t pid = 0;     // a task that attaches it
    std::string link;  // /proc/PID/map_files/START-END of one of its attachments
    uint64_t attachments = 0;
  };
  std::map<uint32_t, Segment> segments_;
  uint32_t ns_ = 0;  // the IPC namespace of the attachments (0: none yet)
  pid_t ns_pid_ = 0;
};

}  // namespace cryo::dump
