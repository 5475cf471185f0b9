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

ShmemPages ShmemTable::dump(PageSink& sink, uint32_t* next_pages_id) {
  ShmemPages pages;
  std::vector<char> buf(4 << 20);
  for (const auto& [inode, w] : objects_) {
    // The object itself, through a /proc link: its holes are skipped with
    // SEEK_DATA/SEEK_HOLE and its pages read without touching the task.
    const std::string& link = w.link;
    Fd fd(::open(link.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) fail_sys("cannot open shared memory object {} of task {} ({})", inode, w.pid, link);
    off_t size = ::lseek(fd.get(), 0, SEEK_END);
    pages.scanned +=
        kernel::page_up(static_cast<uint64_t>(std::max<off_t>(size, 0))) / kernel::kPageSize;
    // Pieces of this size that read as zeros are left out (0: none).
    const uint64_t zero_unit = std::min<uint64_t>(huge_page_size(fd.get()), buf.size());
    // Reads [off, off + n) of the object into buf: zeros past its end (a partial last page).
    auto read_at = [&](off_t off, size_t n) {
      std::fill(buf.begin(), buf.begin() + static_cast<long>(n), 0);
      if (off >= size) return;
      size_t want = std::min<size_t>(n, static_cast<size_t>(size - off));
      if (::pread(fd.get(), buf.data(), want, off) != static_cast<ssize_t>(want))
        fail_sys("cannot read shared memory object {} at {}", inode, off);
    };
    // The runs of pages to write, first: a streamed sink takes every entry before the pages.
    std::vector<std::pair<off_t, off_t>> runs;
    auto add = [&](off_t from, off_t to) {
      if (!runs.empty() && runs.back().second == from)
        runs.back().second = to;
      else
        runs.emplace_back(from, to);
    };
    for (off_t pos = 0; pos < size;) {
      off_t data = ::lseek(fd.get(), pos, SEEK_DATA);
      if (data < 0) break;  // ENXIO: no more data
      off_t hole = ::lseek(fd.get(), data, SEEK_HOLE);
      if (hole < 0) hole = size;
      // Whole pages: a file whose size is not page-aligned ends in a partial page.
      off_t end = static_cast<off_t>(kernel::page_up(static_cast<uint64_t>(hole)));
      if (!zero_unit) {
        runs.emplace_back(data, end);  // an extent of its own, as the object has it
      } else {
        bool first = true;
        for (off_t off = data; off < end; off += static_cast<off_t>(zero_unit)) {
          size_t n = std::min<size_t>(zero_unit, static_cast<size_t>(end - off));
          read_at(off, n);
          if (all_zero(buf.data(), n)) continue;
          if (first)
            runs.emplace_back(off, off + static_cast<off_t>(n));
          else
            add(off, off + static_cast<off_t>(n));
          first = false;
        }
      }
      pos = hole;
    }
    auto img = sink.open(PagemapKind::kShmem, inode, (*next_pages_id)++);
    for (auto [from, to] : runs) {
      pagemap_entry e;
      e.set_vaddr(static_cast<uint64_t>(from));
      e.set_nr_pages(static_cast<uint32_t>((to - from) / kernel::kPageSize));
      e.set_flags(image::kPePresent);
      img->entry(e);
      pages.written += static_cast<uint64_t>(to - from) / kernel::kPageSize;
    }
    uint64_t out = 0;
    for (auto [from, to] : runs) {
      for (off_t off = from; off < to;) {
        size_t n = std::min<size_t>(buf.size(), static_cast<size_t>(to - off));
        read_at(off, n);
        img->write(out, buf.data(), n);
        out += n;
        off += static_cast<off_t>(n);
        progress::add_total(static_cast<int64_t>(n / kernel::kPageSize));
        progress::add_done(n / kernel::kPageSize);
      }
    }
    img->close();
    log::info("shared memory object {} ({} bytes) dumped from task {}", inode, size, w.pid);
  }
  return pages;
}

}  // namespace cryo::dump
