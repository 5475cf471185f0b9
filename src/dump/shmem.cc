#include "dump/shmem.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
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

ShmemPages ShmemTable::dump(PageSink& sink, uint32_t* next_pages_id) {
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
    // The extents with data, first: a streamed sink takes every entry before the pages.
    struct Extent {
      off_t data, hole, end;
    };
    std::vector<Extent> extents;
    for (off_t pos = 0; pos < size;) {
      off_t data = ::lseek(fd.get(), pos, SEEK_DATA);
      if (data < 0) break;  // ENXIO: no more data
      off_t hole = ::lseek(fd.get(), data, SEEK_HOLE);
      if (hole < 0) hole = size;
      // Whole pages: a file whose size is not page-aligned ends in a partial page.
      off_t end = static_cast<off_t>(kernel::page_up(static_cast<uint64_t>(hole)));
      extents.push_back({data, hole, end});
      pos = hole;
    }
    auto img = sink.open(PagemapKind::kShmem, inode, (*next_pages_id)++);
    for (const Extent& x : extents) {
      pagemap_entry e;
      e.set_vaddr(static_cast<uint64_t>(x.data));
      e.set_nr_pages(static_cast<uint32_t>((x.end - x.data) / kernel::kPageSize));
      e.set_flags(image::kPePresent);
      img->entry(e);
    }
    std::vector<char> buf(4 << 20);
    uint64_t out = 0;
    for (const Extent& x : extents) {
      for (off_t off = x.data; off < x.end;) {
        size_t n = std::min<size_t>(buf.size(), static_cast<size_t>(x.end - off));
        std::fill(buf.begin(), buf.begin() + static_cast<long>(n), 0);
        if (off < x.hole) {
          size_t want = std::min<size_t>(n, static_cast<size_t>(x.hole - off));
          if (::pread(fd.get(), buf.data(), want, off) != static_cast<ssize_t>(want))
            fail_sys("cannot read shared memory object {} at {}", inode, off);
        }
        img->write(out, buf.data(), n);
        out += n;
        off += static_cast<off_t>(n);
        progress::add_total(static_cast<int64_t>(n / kernel::kPageSize));
        progress::add_done(n / kernel::kPageSize);
      }
      pages.written += static_cast<uint64_t>(x.end - x.data) / kernel::kPageSize;
    }
    img->close();
    log::info("shared memory object {} ({} bytes) dumped from task {}", inode, size, w.pid);
  }
  return pages;
}

}  // namespace cryo::dump
