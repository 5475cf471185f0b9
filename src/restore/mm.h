// Rebuilds a task's address space from outside: unmap cryo's copy, move the vDSO, map every
// VMA, fill private memory from the page images, set the mm fields.
#pragma once

#include "infect/remote_task.h"
#include "restore/files.h"
#include "restore/plan.h"
#include "restore/shmem.h"

namespace cryo::restore {

// Leaves the task with its final address space and a scratch area (free in that layout)
// for the remaining remote syscalls. Mapped memfds come from `files`. `parent`, when set, is
// the task it was forked from, whose address space was complete at that moment: mappings
// both have in common are kept, and of their pages only those that differ are written, so
// pages shared copy-on-write at the dump are shared again.
struct MmPages {
  uint64_t written = 0;   // pages copied from the image
  uint64_t compared = 0;  // pages of kept mappings compared with the parent's
  uint64_t kept = 0;      // of those, equal: left shared
  // cryo's vDSO, parked in a task whose dumped process had none: its children, forked later,
  // need it too. drop_parked_vdso() takes it away once the tree stands.
  uint64_t parked_vdso = 0, parked_vdso_len = 0;
};
void drop_parked_vdso(RemoteTask& rt, uint64_t start, uint64_t len);
MmPages restore_mm(RemoteTask& rt, const TaskPlan& t, const Plan& plan, ShmemSet& shmem,
                   FileSet& files, const TaskPlan* parent);

}  // namespace cryo::restore
