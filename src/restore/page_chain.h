// The private pages of one task to restore, through a chain of images: pagemap-PID.img runs
// marked "in the parent" (PE_PARENT, made by a dump with --prev-images-dir) are read from the
// images the link "parent" of the images directory names, and so on up the chain.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pagemap.pb.h"

namespace cryo::restore {

// A read-only mapping of one pages-N.img.
class PagesFile {
 public:
  PagesFile(const std::string& dir, uint32_t id);
  ~PagesFile();
  PagesFile(const PagesFile&) = delete;
  PagesFile& operator=(const PagesFile&) = delete;
  const char* data() const { return data_; }
  size_t size() const { return len_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  char* data_ = nullptr;
  size_t len_ = 0;
};

class PageChain {
 public:
  // `runs` are the task's pagemap-`pid`.img in `dir`, its pages in pages-`pages_id`.img (their
  // count checked already). Maps every image it needs; throws naming the image and the page
  // when a parent image is missing or lacks a page marked as in it.
  PageChain(const std::string& dir, pid_t pid, uint32_t pages_id,
            const std::vector<pagemap_entry>& runs);
  PageChain(const PageChain&) = delete;
  PageChain& operator=(const PageChain&) = delete;

  // [vaddr, vaddr + len) holds the bytes at `data`. Sorted by address, apart.
  struct Run {
    uint64_t vaddr, len;
    const char* data;
  };
  const std::vector<Run>& runs() const { return runs_; }
  uint64_t from_parents() const { return from_parents_; }  // pages read from parent images

 private:
  std::vector<std::unique_ptr<PagesFile>> files_;
  std::vector<Run> runs_;
  uint64_t from_parents_ = 0;
};

}  // namespace cryo::restore
