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
// 0), asked of the task by `rt`. mm->def_flags shows nowhere in /proc: a page mapped now in
// the task is locked if MCL_FUTURE is in force (madvise(MADV_DONTNEED) refuses locked memory
// with EINVAL), and populated at once unless MCL_ONFAULT came with it.
uint32_t mlockall_flags(RemoteTask& rt, pid_t pid);
// The same from a page the task was given and nobody touched: `pme` its pagemap entry
// (fresh_page_entry) and `advice` what madvise(MADV_DONTNEED) on it returned.
uint64_t fresh_page_entry(pid_t pid, uint64_t page);
uint32_t mlockall_from_fresh_page(pid_t pid, uint64_t pme, long advice);

// Builds the mm entry from smaps, stat and auxv. `brk` is the task's current break.
mm_entry collect_mm(const FrozenTask& t, uint64_t brk, FileTable& files, ShmemTable& shmem);

}  // namespace cryo::dump
