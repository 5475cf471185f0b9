#include "restore/shmem.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "base/progress.h"
#include "image/image.h"
#include "kernel/syscalls.h"
#include "pagemap.pb.h"
#include "proc/proc.h"
#include "restore/tree.h"

namespace cryo::restore {

void read_pages_in_chunks(int fd, const std::string& name, off_t off, uint64_t len,
                          const std::function<void(uint64_t, const char*, size_t)>& put) {
  constexpr size_t kChunk = 16 << 20;
  std::vector<char> buf(static_cast<size_t>(std::min<uint64_t>(len, kChunk)));
  for (uint64_t done = 0; done < len;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(len - done, kChunk));
    ssize_t got = ::pread(fd, buf.data(), n, off + static_cast<off_t>(done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) fail("image {} is truncated at offset {}", name, off + static_cast<off_t>(done));
    put(done, buf.data(), static_cast<size_t>(got));
    done += static_cast<uint64_t>(got);
  }
}

void fail_huge_pages(int err, uint32_t hugetlb, uint64_t len, const std::string& what) {
  const unsigned shift = (hugetlb >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK;
  const uint64_t kb = shift >= 10 ? (1ULL << shift) >> 10 : 2048;  // the default size on x86
  std::string free = "?";
  if (auto f = proc::try_read_file(
          fmt::format("/sys/kernel/mm/hugepages/hugepages-{}kB/free_hugepages", kb)))
    free = f->substr(0, f->find('\n'));
  fail_errno(err,
             "{}: cannot have {} kB of huge pages of {} kB ({} free): reserve more with "
             "sysctl vm.nr_hugepages",
             what, len >> 10, kb, free);
}

ShmemSet::ShmemSet(const Plan& plan) : plan_(plan) {
  // An object's size: the furthest any mapping of it reaches.
  for (const auto& t : plan.tasks)
    for (const auto& v : t.mm.vmas())
      if ((v.status() & image::kVmaAnonShared) && !(v.status() & image::kVmaSysvipc)) {
        Object& o = objects_[v.shmid()];
        o.size = std::max(o.size, v.pgoff() + (v.end() - v.start()));
        o.hugetlb |= v.flags() & image::kVmaHugetlbFlags;
      }
}

void ShmemSet::create(RemoteTask& rt, uint64_t shmid, Object& o,
                      std::vector<std::pair<uint64_t, uint64_t>>& busy) {
  // The object may reach past every mapping (a tail unmapped since, that mremap can bring
  // back): its pages say how far (checked by the planner).
  const SharedPages& sp = plan_.shared_pages.at(shmid);
  // Huge pages: the object is whole huge pages, at an address aligned to them (without the
  // size in the flags, the kernel's default size; 1 GiB alignment suits any).
  const unsigned shift = (o.hugetlb >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK;
  if (shift > 34)
    fail("image mm of task {} is corrupt: shared memory {} of huge pages of 2^{} bytes", rt.tid(),
         shmid, shift);
  const uint64_t align = !o.hugetlb ? kernel::kPageSize : shift ? 1ULL << shift : 1ULL << 30;
  auto align_up = [align](uint64_t a) { return (a + align - 1) & ~(align - 1); };
  o.size = align_up(std::max(o.size, sp.end));
  o.tmp = align_up(pick_free(busy, o.size + align - kernel::kPageSize));
  busy.emplace_back(o.tmp, o.tmp + o.size);
  long r = rt.syscall(SYS_mmap, {o.tmp, o.size, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | o.hugetlb,
                                 static_cast<uint64_t>(-1L), 0});
  const std::string what = fmt::format("task {}: shared memory {}", rt.tid(), shmid);
  if (r == -ENOMEM && o.hugetlb) fail_huge_pages(ENOMEM, o.hugetlb, o.size, what);
  if (r < 0 && r > -4096) fail_errno(static_cast<int>(-r), "{}: cannot map it", what);
  o.creator = rt.tid();
  std::string pages = fmt::format("{}/pages-{}.img", plan_.dir, sp.pages_id);
  Fd fd = image::open_image(pages);
  off_t off = 0;
  for (const pagemap_entry& e : sp.runs) progress::add_total(e.nr_pages());
  for (const pagemap_entry& e : sp.runs) {
    uint64_t len = uint64_t{e.nr_pages()} * kernel::kPageSize;
    read_pages_in_chunks(fd.get(), pages, off, len, [&](uint64_t at, const char* p, size_t n) {
      rt.write_mem(o.tmp + e.vaddr() + at, p, n);
      progress::add_done(n / kernel::kPageSize);
    });
    off += static_cast<off_t>(len);
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
