// Memory change tracking along a chain of images (pre-dump, --track-mem, --prev-images-dir)
// on kernels without soft-dirty: a userfaultfd made in each task (a remote userfaultfd(),
// taken with pidfd_getfd and closed in the task) write-protects its writable private
// mappings in asynchronous mode, where a write just clears a page's protection; the next
// dump asks /proc/PID/pagemap (PAGEMAP_SCAN) which pages were written and protects them again
// in the same call. Between two dumps of the chain a holder process keeps the userfaultfds
// open (their context dies with its last fd): see docs/architecture.md.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "base/fd.h"
#include "infect/frozen_tree.h"
#include "proc/proc.h"

namespace cryo::dump {

using PageRanges = std::vector<std::pair<uint64_t, uint64_t>>;  // [start, end), sorted

class MemTracker {
 public:
  // `dir` is this dump's images directory, `prev` the --prev-images-dir as given (relative to
  // `dir` unless absolute; empty: none), `track` --track-mem. With `prev`, links dir/parent to
  // it and takes the chain's userfaultfds from the holder the previous dump left there (done
  // before the tree is frozen). Throws on a bad `prev`.
  MemTracker(std::string dir, std::string prev, bool track);
  ~MemTracker();
  MemTracker(const MemTracker&) = delete;
  MemTracker& operator=(const MemTracker&) = delete;

  // For frozen task `t`, whose mappings are `vmas` (/proc/PID/maps): its present pages that
  // the parent image holds as they are now (not written since it was made). With
  // --track-mem, the task's writable private mappings are then protected anew for the next
  // dump. Refuses a task that has a userfaultfd of its own.
  PageRanges track(FrozenTask& t, const std::vector<proc::Vma>& vmas);
  // The same in two steps, for a pre-dump: attach() while the tree is frozen (the part that
  // runs code in the task), then track() after it runs again. A page written between the
  // scan and the copy of the pages is in the image at some value it had since, and marked
  // written for the next dump: the image need not be one instant, the final dump is.
  void attach(FrozenTask& t);
  PageRanges track(pid_t pid, const std::vector<proc::Vma>& vmas, FrozenTask* frozen);

  // The tree runs on: a detached holder process takes the userfaultfds, for the next dump of
  // the chain to find through `dir`. It ends when that dump takes them, or after
  // $CRYO_TRACK_MEM_TIMEOUT seconds (default 3600): the dump after that writes every page.
  void hand_over();

  // The images dir file naming the holder's socket.
  static constexpr const char* kHolderFile = "cryo-memtrack";

 private:
  struct Task {
    uint64_t starttime = 0;
    Fd uffd;
  };
  Fd create_uffd(FrozenTask& t);
  void take_from_holder(const std::string& prev_abs);
  PageRanges parent_pages(pid_t pid) const;

  struct Attached {
    Task* held = nullptr;  // the previous dump's tracking of this process, if still valid
    bool active = false;   // tracked (held or new)
  };
  std::map<pid_t, Attached> attached_;
  std::string dir_, prev_abs_;
  bool track_;
  unsigned hold_seconds_ = 0;
  std::map<pid_t, Task> held_;     // taken from the previous dump's holder
  std::map<pid_t, Task> tracked_;  // tracked by this dump, for the next
};

}  // namespace cryo::dump
