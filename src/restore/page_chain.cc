#include "restore/page_chain.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <utility>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "image/image.h"
#include "image/pagemap.h"
#include "kernel/syscalls.h"
#include "pages/lazy.h"
#include "restore/validate.h"

namespace cryo::restore {
namespace {

// A chain longer than this is a loop of links or a mistake.
constexpr int kMaxDepth = 256;

using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;

}  // namespace

PagesFile::PagesFile(const std::string& dir, uint32_t id)
    : path_(fmt::format("{}/pages-{}.img", dir, id)) {
  Fd fd = image::open_image(path_);
  len_ = static_cast<size_t>(::lseek(fd.get(), 0, SEEK_END));
  if (len_) {
    void* p = ::mmap(nullptr, len_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (p == MAP_FAILED) fail_sys("cannot map image {}", path_);
    data_ = static_cast<char*>(p);
  }
}

PagesFile::~PagesFile() {
  if (data_) ::munmap(data_, len_);
}

PageChain::PageChain(const std::string& dir, pid_t pid, uint32_t pages_id,
                     const std::vector<pagemap_entry>& top) {
  constexpr uint64_t kPage = kernel::kPageSize;
  const std::string pagemap = fmt::format("pagemap-{}.img", pid);
  std::string level_dir = dir;
  std::vector<pagemap_entry> runs = top;
  uint32_t id = pages_id;
  uint64_t count = 0;  // pages a parent's pages file must hold
  Ranges wanted;       // what the level below asks of this one; empty for the top: all of it
  std::set<std::pair<dev_t, ino_t>> seen;
  for (int depth = 0;; depth++) {
    struct stat st;
    if (::stat(level_dir.c_str(), &st) == 0 && !seen.insert({st.st_dev, st.st_ino}).second)
      fail("the images chain of {} loops back to {} through its 'parent' links", dir, level_dir);
    auto& file = files_.emplace_back(std::make_unique<PagesFile>(level_dir, id));
    if (depth > 0)
      check_pages_size(count, file->size(), fmt::format("pages-{}.img", id),
                       level_dir + "/" + pagemap);
    Ranges next;  // asked of the parent
    uint64_t off = 0;
    size_t wi = 0;
    for (const pagemap_entry& e : runs) {
      const uint64_t s = e.vaddr(), len = uint64_t{e.nr_pages()} * kPage, end = s + len;
      const bool in_parent = image::in_parent(e);
      if (pages::on_source(e)) continue;  // a lazy dump's: served by the lazy-pages daemon
      // The parts of this run the level below wants (all of it at the top).
      auto each_wanted = [&](auto&& fn) {
        if (depth == 0) return fn(s, end);
        while (wi < wanted.size() && wanted[wi].second <= s) wi++;
        for (size_t k = wi; k < wanted.size() && wanted[k].first < end; k++)
          fn(std::max(s, wanted[k].first), std::min(end, wanted[k].second));
      };
      if (in_parent) {
        each_wanted([&](uint64_t a, uint64_t b) {
          if (!next.empty() && next.back().second == a)
            next.back().second = b;
          else
            next.emplace_back(a, b);
        });
        continue;
      }
      if (off + len > file->size()) fail("image {} is truncated at offset {}", file->path(), off);
      each_wanted([&](uint64_t a, uint64_t b) {
        runs_.push_back({a, b - a, file->data() + off + (a - s)});
        if (depth > 0) from_parents_ += (b - a) / kPage;
      });
      off += len;
    }
    // Every page asked of this level must be in one of its runs.
    if (depth > 0) {
      Ranges have;
      for (const pagemap_entry& e : runs)
        have.emplace_back(e.vaddr(), e.vaddr() + uint64_t{e.nr_pages()} * kPage);
      size_t h = 0;
      for (auto [a, b] : wanted) {
        while (a < b) {
          while (h < have.size() && have[h].second <= a) h++;
          if (h == have.size() || have[h].first > a)
            fail(
                "the images chain is broken: {}/{} marks page {:#x} of task {} as in the parent "
                "images, but {}/{} has no such page: restore from a whole chain, or dump again",
                dir, pagemap, a, pid, level_dir, pagemap);
          a = std::min(b, have[h].second);
        }
      }
    }
    if (next.empty()) break;
    if (depth + 1 >= kMaxDepth)
      fail("the images chain of {} is longer than {} dumps", dir, kMaxDepth);
    const std::string parent = level_dir + "/parent";
    if (::stat(parent.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
      fail_sys(
          "the images chain is broken: {}/{} marks pages of task {} as in the parent images, "
          "but {} does not lead to them: restore from a whole chain",
          level_dir, pagemap, pid, parent);
    level_dir = parent;
    if (!image::exists(level_dir, pagemap))
      fail(
          "the images chain is broken: pages of task {} are marked as in the parent images, "
          "but {} has no {}: restore from a whole chain",
          pid, level_dir, pagemap);
    image::Pagemap pm;
    try {
      pm = image::read_pagemap(level_dir, pagemap);
    } catch (const Error& e) {
      // The reader names the file only: say which image of the chain it is.
      fail("the images chain is broken: in {}: {}: restore from a whole chain", level_dir,
           e.what());
    }
    runs = std::move(pm.runs);
    count = check_page_runs(runs, level_dir + "/" + pagemap, nullptr, kUserTop, true);
    id = pm.pages_id;
    wanted = std::move(next);
  }
  std::sort(runs_.begin(), runs_.end(),
            [](const Run& a, const Run& b) { return a.vaddr < b.vaddr; });
  if (from_parents_)
    log::info("task {}: {} pages from parent images ({} image(s) in the chain)", pid, from_parents_,
              files_.size());
}

}  // namespace cryo::restore
