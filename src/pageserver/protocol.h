// CRIU 4.2's page-server protocol (criu/page-xfer.c): facts of the wire format.
//
// Every message starts with a 32-byte header in the host's byte order (x86-64 here): u32 cmd,
// 4 bytes of padding, u64 nr_pages, u64 vaddr, u64 dst_id. CRIU 4.2 made nr_pages 64 bits; the
// 24-byte header of CRIU 4.1 and older (u32 nr_pages, no padding) is not understood by 4.2, nor
// by cryo.
//   cmd      the command in the low 16 bits, pagemap_entry flags (image::kPe*) in the high 16
//   dst_id   the pagemap image: id << 8 | type (type 1: pagemap-ID.img, 2: pagemap-shmem-ID.img)
// Commands and the server's answers:
//   OPEN2    opens the image dst_id for writing; answers 1 byte: 1 if the server's parent
//            images directory has that image, else 0
//   OPEN     the same, without an answer (older clients)
//   PARENT   answers a 4-byte int: 1 if the parent images directory has image dst_id, else 0
//   ADD_F    a pagemap entry (vaddr, nr_pages, flags); with kPePresent, nr_pages pages follow
//   ADD      ADD_F with kPePresent; HOLE: ADD_F with kPeParent (older clients)
//   CLOSE    the end of the dump: the server answers a 4-byte status (0) and the client hangs
//            up; FORCE_CLOSE the same, when the socket is shared (--ps-socket)
//   GET      lazy pages (post-copy): not served by cryo
#pragma once

#include <cstdint>

namespace cryo::pageserver {

struct Header {
  uint32_t cmd = 0;
  uint32_t pad = 0;
  uint64_t nr_pages = 0;
  uint64_t vaddr = 0;
  uint64_t dst_id = 0;
};
static_assert(sizeof(Header) == 32, "CRIU 4.2's struct page_server_iov on x86-64");

constexpr uint32_t kAdd = 1, kHole = 2, kOpen = 3, kOpen2 = 4, kParent = 5, kAddF = 6, kGet = 7;
constexpr uint32_t kClose = 0x1023, kForceClose = 0x1024;

constexpr uint32_t kCmdBits = 16;
constexpr uint32_t command(uint32_t cmd) {
  return cmd & ((1u << kCmdBits) - 1);
}
constexpr uint32_t flags(uint32_t cmd) {
  return cmd >> kCmdBits;
}
constexpr uint32_t with_flags(uint32_t cmd, uint32_t fl) {
  return fl << kCmdBits | cmd;
}

constexpr uint32_t kTypeBits = 8;
constexpr uint64_t kTypeTask = 1, kTypeShmem = 2;
constexpr uint64_t dst_id(uint64_t type, uint64_t id) {
  return id << kTypeBits | type;
}
// The type of dst_id: kTypeTask or kTypeShmem, also for the numbers older CRIUs sent; 0 if
// unknown.
constexpr uint64_t dst_type(uint64_t dst) {
  switch (dst & ((1u << kTypeBits) - 1)) {
    case kTypeTask:
    case 10:
    case 11:
    case 16:
    case 17:
      return kTypeTask;
    case kTypeShmem:
    case 27:
    case 28:
    case 29:
    case 32:
    case 33:
    case 34:
      return kTypeShmem;
    default:
      return 0;
  }
}
constexpr uint64_t dst_image(uint64_t dst) {
  return dst >> kTypeBits;
}

// A page server names its pages-N.img from here on, so that its images and those of a dump
// into the same directory do not collide (CRIU does the same).
constexpr uint32_t kServerPagesIdBase = 0x10001;

}  // namespace cryo::pageserver
