#include "dump/shmem.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "base/progress.h"
#include "image/image.h"
#include "kernel/syscalls.h"
#include "pagemap.pb.h"

namespace cryo::dump {

void ShmemTable::add(pid_t pid, uint64_t inode, uint64_t start, uint64_t end) {
  objects_.try_emplace(inode,
                       Where{pid, fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, start, end)});
}

void ShmemTable::add_link(uint64_t inode, const std::string& link, pid_t pid) {
  objects_.try_emplace(inode, Where{pid, link});
}

namespace {

// Huge pages of hugetlbfs are not holes to lseek: untouched ones read as zeros. Their size, to
// skip them, or 0 for other objects.
uint64_t huge_page_size(int fd) {
  struct statfs sf {};
  if (::fstatfs(fd, &sf) < 0 || sf.f_type != HUGETLBFS_MAGIC || sf.f_bsize <= 0) return 0;
  return static_cast<uint64_t>(sf.f_bsize);
}

bool all_zero(const char* p, size_t n) {
  return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0);
}

}  // namespace

ShmemPages ShmemTable::dump(const std::string& dir, uint32_t* next_pages_id) {
  ShmemPages pages;
  for (const auto& [inode, w] : objects_) {
    // The object itself, through a /proc link: its holes are skipped with
    // SEEK_DATA/SEEK_HOLE and its pages read without touching the task.
    const std::string& link = w.link;
    Fd fd(::open(link.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) fail_sys("cannot open shared memory object {} of task {} ({})", inode, w.pid, link);
    off_t size = ::lseek(fd.get(), 0, SEEK_END);
    pages.scanned +=
        kernel::page_up(static_cast<uint64_t>(std::max<off_t>(size, 0))) / kernel::kPageSize;
    uint32_t pages_id = (*next_pages_id)++;
    std::string pages_name = fmt::format("pages-{}.img", pages_id);
    Fd out = image::create_raw(dir, pages_name);
    image::Writer pm(dir, fmt::format("pagemap-shmem-{}.img", inode), image::magic::kPagemap);
    pagemap_head head;
    head.set_pages_id(pages_id);
    pm.put(head);
    std::vector<char> buf(4 << 20);
    // Pieces of this size that read as zeros are left out (0: none).
    const uint64_t zero_unit = std::min<uint64_t>(huge_page_size(fd.get()), buf.size());
    // The run of pages being written, put in the pagemap when it ends.
    off_t run = 0, run_end = 0;
    auto end_run = [&] {
      if (run_end == run) return;
      pagemap_entry e;
      e.set_vaddr(static_cast<uint64_t>(run));
      e.set_nr_pages(static_cast<uint32_t>((run_end - run) / kernel::kPageSize));
      e.set_flags(image::kPePresent);
      pm.put(e);
      pages.written += static_cast<uint64_t>(run_end - run) / kernel::kPageSize;
      run = run_end;
    };
    off_t pos = 0;
    while (pos < size) {
      off_t data = ::lseek(fd.get(), pos, SEEK_DATA);
      if (data < 0) break;  // ENXIO: no more data
      off_t hole = ::lseek(fd.get(), data, SEEK_HOLE);
      if (hole < 0) hole = size;
      // Whole pages: a file whose size is not page-aligned ends in a partial page.
      off_t end = static_cast<off_t>(kernel::page_up(static_cast<uint64_t>(hole)));
      end_run();
      run = run_end = data;
      for (off_t off = data; off < end;) {
        size_t n =
            std::min<size_t>(zero_unit ? zero_unit : buf.size(), static_cast<size_t>(end - off));
        std::fill(buf.begin(), buf.begin() + static_cast<long>(n), 0);
        if (off < hole) {
          size_t want = std::min<size_t>(n, static_cast<size_t>(hole - off));
          if (::pread(fd.get(), buf.data(), want, off) != static_cast<ssize_t>(want))
            fail_sys("cannot read shared memory object {} at {}", inode, off);
        }
        progress::add_total(static_cast<int64_t>(n / kernel::kPageSize));
        progress::add_done(n / kernel::kPageSize);
        if (zero_unit && all_zero(buf.data(), n)) {
          end_run();
          run = run_end = off + static_cast<off_t>(n);
        } else {
          if (::write(out.get(), buf.data(), n) != static_cast<ssize_t>(n))
            fail_sys("cannot write image {}/{}", dir, pages_name);
          run_end += static_cast<off_t>(n);
        }
        off += static_cast<off_t>(n);
      }
      end_run();
      pos = hole;
    }
    pm.close();
    log::info("shared memory object {} ({} bytes) dumped from task {}", inode, size, w.pid);
  }
  return pages;
}

}  // namespace cryo::dump
