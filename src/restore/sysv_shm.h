// SysV shared memory segments (ipcns-shm-<ipc ns id>.img) and their attachments. A segment
// outlives its processes: the one with the dumped id may still be here (reused, its content
// written again) or gone (made again with the same id, key, owners and mode). Tasks attach
// them with a remote shmat where the dumped VMAs were. When the root made its own IPC
// namespace (ipcns-var-ID.img), the segments are made in that new namespace once the root
// exists, by a thread of cryo that joins it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "image/image.h"
#include "infect/remote_task.h"
#include "ipc-shm.pb.h"
#include "ipc-var.pb.h"
#include "restore/plan.h"

namespace cryo::restore {

class SysvSegments {
 public:
  // Makes every segment of the images ready, before any task exists; fails naming the
  // segment when its id or key is held by another one.
  explicit SysvSegments(const Plan& plan);
  // Unless kept, removes the segments this restore made.
  ~SysvSegments();
  SysvSegments(const SysvSegments&) = delete;
  SysvSegments& operator=(const SysvSegments&) = delete;

  // Task i of the plan exists (pid `pid`): the root's new IPC namespace gets its segments.
  void place(size_t i, pid_t pid);
  // Once every task has attached its segments: those that were marked for removal when
  // dumped are marked again (they go with their last attachment). In the root's own
  // namespace, kernel.shm_rmid_forced is set then: set before, it would have removed the
  // segments cryo made and no task attached yet.
  void finish();
  // The restore succeeded: the segments stay.
  void keep() { kept_ = true; }

 private:
  struct Segment {
    ipc_shm_entry entry;
    std::string_view content;  // `size` bytes in `image_`
    bool made = false;         // made by this restore (else reused)
  };
  void load(const Plan& plan);
  void check_attachments(const Plan& plan) const;
  // Reuses the segment with the dumped id (true), or finds the id free (false).
  bool reuse(const Segment& s) const;
  void make(Segment& s);
  void fill(const Segment& s, bool fresh) const;
  void remove_made();

  bool fresh_ns_ = false;  // in the root's own IPC namespace, made by the restore
  ipc_var_entry vars_;     // that namespace's settings
  std::string ns_path_;    // /proc/ROOT/ns/ipc, once placed
  std::optional<image::Reader> image_;
  std::map<uint32_t, Segment> segments_;  // by id
  bool kept_ = false;
};

// Attaches in the task the segment of SysV VMA `v` at [start, end), as it was attached
// (read-only or not, executable or not) and with its protections. `busy` is the task's final
// layout, for a temporary place when the VMA is a part of the segment.
void attach_sysv_shm(RemoteTask& rt, const vma_entry& v,
                     const std::vector<std::pair<uint64_t, uint64_t>>& busy);

}  // namespace cryo::restore
