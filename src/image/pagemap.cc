#include "image/pagemap.h"

#include "base/error.h"
#include "image/image.h"

namespace cryo::image {

Pagemap read_pagemap(const std::string& dir, const std::string& name) {
  Reader r(dir, name, magic::kPagemap);
  pagemap_head head;
  if (!r.next(head)) fail("image {}/{} is truncated: no header", dir, name);
  Pagemap pm;
  pm.pages_id = head.pages_id();
  for (pagemap_entry e; r.next(e);) pm.runs.push_back(e);
  return pm;
}

bool in_parent(const pagemap_entry& e) {
  return (e.flags() & kPeParent) || e.in_parent();
}

}  // namespace cryo::image
