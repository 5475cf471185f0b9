// Rebuilds a task's address space from outside: unmap cryo's copy, move the vDSO, map every
// VMA, fill private memory from the page images, set the mm fields.
#pragma once

#include "infect/remote_task.h"
#include "restore/files.h"
#include "restore/plan.h"
#include "restore/shmem.h"

namespace cryo::restore {

// Leaves the task with its final address space and a scratch area (free in that layout)
// for the remaining remote syscalls. Mapped memfds come from `files`. Returns the number of
// pages written.
uint64_t restore_mm(RemoteTask& rt, const TaskPlan& t, const Plan& plan, ShmemSet& shmem,
                    FileSet& files);

}  // namespace cryo::restore
