#include "restore/shmem.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "image/image.h"
#include "kernel/syscalls.h"
#include "pagemap.pb.h"
#include "restore/tree.h"

namespace cryo::restore {

ShmemSet::ShmemSet(const Plan& plan) : plan_(plan) {
  // An object's size: the furthest any mapping of it reaches.
  for (const auto& t : plan.tasks)
    for (const auto& v : t.mm.vmas())
      if (v.status() & image::kVmaAnonShared) {
        Object& o = objects_[v.shmid()];
        o.size = std::max(o.size, v.pgoff() + (v.end() - v.start()));
      }
}

void ShmemSet::create(RemoteTask& rt, uint64_t shmid, Object& o,
                      std::vector<std::pair<uint64_t, uint64_t>>& busy) {
  o.tmp = pick_free(busy, o.size);
  busy.emplace_back(o.tmp, o.tmp + o.size);
  rt.check("mmap of shared memory", SYS_mmap,
           {o.tmp, o.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
            static_cast<uint64_t>(-1L), 0});
  o.creator = rt.tid();
  std::string name = fmt::format("pagemap-shmem-{}.img", shmid);
  image::Reader r(plan_.dir, name, image::magic::kPagemap);
  pagemap_head head;
  if (!r.next(head)) fail("image {} is truncated: no header", name);
  std::string pages = fmt::format("{}/pages-{}.img", plan_.dir, head.pages_id());
  Fd fd(::open(pages.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) fail_sys("cannot open image {}", pages);
  pagemap_entry e;
  std::vector<char> buf;
  off_t off = 0;
  while (r.next(e)) {
    uint64_t len = e.nr_pages() * kernel::kPageSize;
    if (e.vaddr() + len > o.size) fail("image {} is corrupt: pages beyond the object", name);
    buf.resize(len);
    if (::pread(fd.get(), buf.data(), len, off) != static_cast<ssize_t>(len))
      fail("image {} is truncated at offset {}", pages, off);
    off += static_cast<off_t>(len);
    rt.write_mem(o.tmp + e.vaddr(), buf.data(), len);
    pages_ += e.nr_pages();
  }
  log::debug("task {}: shared memory object {} ({} bytes) created", rt.tid(), shmid, o.size);
}

long ShmemSet::open(RemoteTask& rt, uint64_t shmid,
                    std::vector<std::pair<uint64_t, uint64_t>>& busy) {
  Object& o = objects_.at(shmid);
  if (!o.creator) create(rt, shmid, o, busy);
  std::string link = fmt::format("/proc/{}/map_files/{:x}-{:x}", o.creator, o.tmp, o.tmp + o.size);
  return static_cast<long>(
      rt.check("open of shared memory", SYS_openat,
               {static_cast<uint64_t>(AT_FDCWD), rt.put_str(0, link), O_RDWR | O_CLOEXEC, 0}));
}

}  // namespace cryo::restore
