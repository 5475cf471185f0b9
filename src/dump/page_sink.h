// Where the dumped pages go: pagemap images and their pages-N.img, written into the images
// directory (local_sink) or sent to a page server (pageserver/client.h). The page server
// writes what it receives through a local sink too, so both ends make the same images.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "pagemap.pb.h"

namespace cryo::dump {

enum class PagemapKind {
  kTask,   // pagemap-ID.img, ID a task's pid
  kShmem,  // pagemap-shmem-ID.img, ID a shared memory object's inode
};

// One pagemap image and the pages it lists.
class PageImage {
 public:
  virtual ~PageImage() = default;
  // The image's entries in address order. A present entry's pages follow in the pages
  // image in the entries' order, given by write(); a local image takes entries and pages
  // in any interleaving, a streamed one takes every entry before the first page.
  virtual void entry(const pagemap_entry& e) = 0;
  // `len` bytes of pages at offset `off` of the pages image. A streamed image takes them in
  // order (off is where the previous write ended).
  virtual void write(uint64_t off, const void* data, size_t len) = 0;
  // The same, taking `len` bytes from the pipe `pipe` (splice: no copy through user memory).
  // Only local images take it.
  virtual void write_from_pipe(uint64_t off, int pipe, size_t len);
  // Ends the image; an image destroyed without close() is abandoned.
  virtual void close() = 0;
};

class PageSink {
 public:
  virtual ~PageSink() = default;
  // The pages of an image must come in order, from one thread: a stream. One image at a
  // time is open; open() waits until the image opened before is closed.
  virtual bool streamed() const = 0;
  // The parent images (an earlier dump the pages may refer to with kPeParent) hold image ID.
  virtual bool has_parent(PagemapKind kind, uint64_t id) = 0;
  // Starts image ID. `pages_id` names its pages-N.img when the sink numbers pages images
  // as the dump does (a page server numbers its own).
  virtual std::unique_ptr<PageImage> open(PagemapKind kind, uint64_t id, uint32_t pages_id) = 0;
  // After the last image: everything is stored (a page server has acknowledged it).
  virtual void finish() = 0;
};

// Images written in `dir`; the parent images are those of `dir`/parent, if any.
std::unique_ptr<PageSink> local_sink(std::string dir);
std::string pagemap_name(PagemapKind kind, uint64_t id);

}  // namespace cryo::dump
