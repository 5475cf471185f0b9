// Shared anonymous memory: the first task that maps an object creates it whole (at a
// temporary place in its address space) and fills it; every mapping of it, in any task, is
// then made from that object through /proc/CREATOR/map_files. The temporary mappings go
// when every address space is complete.
#pragma once

#include <sys/syscall.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "infect/remote_task.h"
#include "restore/plan.h"

namespace cryo::restore {

// Reads `len` bytes of the pages image `fd` (named `name`) from `off`, in pieces of at most
// 16 MiB (a run may be larger than one read or one process_vm_writev can take), handing each
// to `put(offset in the run, bytes, count)`.
void read_pages_in_chunks(int fd, const std::string& name, off_t off, uint64_t len,
                          const std::function<void(uint64_t, const char*, size_t)>& put);

// Fails a mapping of huge pages (`hugetlb`: MAP_HUGETLB and the size bits) that the kernel
// refused with `err`, saying how many huge pages the pool has free and how to reserve more.
[[noreturn]] void fail_huge_pages(int err, uint32_t hugetlb, uint64_t len, const std::string& what);

class ShmemSet {
 public:
  explicit ShmemSet(const Plan& plan);
  // An fd in `rt`'s task on object `shmid`, creating the object there if it is new. `busy`
  // is the task's final layout (the temporary mapping must avoid it).
  // The new temporary range is added to `busy`.
  long open(RemoteTask& rt, uint64_t shmid, std::vector<std::pair<uint64_t, uint64_t>>& busy);
  // Removes the temporary mappings; `task_of` gives the remote handle of a creator.
  template <typename F>
  void finish(F task_of) {
    for (auto& [id, o] : objects_)
      if (o.creator) task_of(o.creator).check("munmap", SYS_munmap, {o.tmp, o.size});
  }
  uint64_t pages_written() const { return pages_; }

 private:
  struct Object {
    uint64_t size = 0;
    pid_t creator = 0;
    uint64_t tmp = 0;
    uint32_t hugetlb = 0;  // MAP_HUGETLB and the page size bits, for huge pages
  };
  void create(RemoteTask& rt, uint64_t shmid, Object& o,
              std::vector<std::pair<uint64_t, uint64_t>>& busy);
  const Plan& plan_;
  std::map<uint64_t, Object> objects_;
  uint64_t pages_ = 0;
};

}  // namespace cryo::restore
