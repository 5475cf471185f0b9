// pagemap-*.img as a whole: its pages file's id and its runs, and what a run says.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pagemap.pb.h"

namespace cryo::image {

struct Pagemap {
  uint32_t pages_id = 0;  // pages-ID.img holds the pages of its runs not in the parent
  std::vector<pagemap_entry> runs;
};

// Reads `name` in `dir`; throws naming the image when it is missing, truncated or corrupt.
Pagemap read_pagemap(const std::string& dir, const std::string& name);

// The run's pages are in the parent images (CRIU's PE_PARENT, or the older in_parent).
bool in_parent(const pagemap_entry& e);

}  // namespace cryo::image
