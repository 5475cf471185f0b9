#include "dump/dedup.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "image/image.h"
#include "image/pagemap.h"
#include "kernel/syscalls.h"

namespace cryo::dump {
namespace {

using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;  // sorted, apart

// Calls fn(a, b) for each part [a, b) of [s, e) that is in `want`.
template <class Fn>
void each_overlap(const Ranges& want, uint64_t s, uint64_t e, Fn&& fn) {
  auto it = std::upper_bound(want.begin(), want.end(), std::make_pair(s, UINT64_MAX));
  if (it != want.begin()) --it;
  for (; it != want.end() && it->first < e; ++it) {
    uint64_t a = std::max(s, it->first), b = std::min(e, it->second);
    if (a < b) fn(a, b);
  }
}

uint64_t dedup_task(const std::string& dir, const std::string& pagemap) {
  constexpr uint64_t kPage = kernel::kPageSize;
  Ranges want;  // pages the level below holds itself
  for (const pagemap_entry& e : image::read_pagemap(dir, pagemap).runs)
    if (!image::in_parent(e))
      want.emplace_back(e.vaddr(), e.vaddr() + uint64_t{e.nr_pages()} * kPage);
  uint64_t punched = 0;
  std::string level = dir;
  for (int depth = 0; depth < 256 && !want.empty(); depth++) {
    level += "/parent";
    struct stat st;
    if (::stat(level.c_str(), &st) < 0 || !S_ISDIR(st.st_mode) || !image::exists(level, pagemap))
      break;
    const image::Pagemap pm = image::read_pagemap(level, pagemap);
    const std::string pages = fmt::format("{}/pages-{}.img", level, pm.pages_id);
    Fd fd(::open(pages.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) fail_sys("cannot open {} to punch pages out of it", pages);
    Ranges next;
    uint64_t off = 0;
    for (const pagemap_entry& e : pm.runs) {
      const uint64_t s = e.vaddr(), len = uint64_t{e.nr_pages()} * kPage;
      if (image::in_parent(e)) {
        each_overlap(want, s, s + len, [&](uint64_t a, uint64_t b) { next.emplace_back(a, b); });
        continue;
      }
      each_overlap(want, s, s + len, [&](uint64_t a, uint64_t b) {
        if (::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                        static_cast<off_t>(off + (a - s)), static_cast<off_t>(b - a)) < 0)
          fail_sys("cannot punch {} pages out of {}", (b - a) / kPage, pages);
        punched += (b - a) / kPage;
      });
      off += len;
    }
    want = std::move(next);
  }
  return punched;
}

}  // namespace

uint64_t dedup(const std::string& dir) {
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) fail_sys("cannot list the images directory {}", dir);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d.get())) {
    std::string n = e->d_name;
    if (n.rfind("pagemap-", 0) == 0 && n.rfind("pagemap-shmem-", 0) != 0 && n.size() > 12 &&
        n.compare(n.size() - 4, 4, ".img") == 0)
      names.push_back(std::move(n));
  }
  uint64_t punched = 0;
  for (const auto& n : names) punched += dedup_task(dir, n);
  log::info("dedup of {}: {} pages punched out of its parent images", dir, punched);
  return punched;
}

}  // namespace cryo::dump
