// The address space of a dumped task: mm-PID.img (VMAs and mm fields). Its private pages are
// dump/page_dumper.h's.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "dump/files.h"
#include "dump/shmem.h"
#include "infect/remote_task.h"
#include "mm.pb.h"
#include "proc/proc.h"

namespace cryo::dump {

// What mlockall() left in force for mappings made from now on (MCL_FUTURE, MCL_ONFAULT, or
// 0), asked of the task by `rt`.
uint32_t mlockall_flags(RemoteTask& rt, pid_t pid);

// Builds the mm entry from smaps, stat and auxv. `brk` is the task's current break.
mm_entry collect_mm(pid_t pid, uint64_t brk, FileTable& files, ShmemTable& shmem);

}  // namespace cryo::dump
