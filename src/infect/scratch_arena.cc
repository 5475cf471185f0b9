#include "infect/scratch_arena.h"

#include <algorithm>
#include <string>

#include "base/error.h"

namespace cryo {

ScratchArena::ScratchArena(RemoteTask& rt) : rt_(rt), outer_(rt.arena_), start_(rt.scratch_used_) {
  if (!rt.scratch_) fail("internal: task {} has no scratch area for call arguments", rt.tid());
  rt.arena_ = this;
}

ScratchArena::~ScratchArena() {
  rt_.scratch_used_ = start_;
  rt_.arena_ = outer_;
}

RemotePtr<char> ScratchArena::put_str(std::string_view s) {
  std::string z(s);  // with its NUL: one write
  return put_array(std::span<const char>(z.c_str(), z.size() + 1));
}

namespace {

// Where the next piece starts: 16-byte aligned at least (what the kernel's structures ask
// for at most, and cheap to give).
size_t next(size_t used, size_t align) {
  align = std::max<size_t>(align, 16);
  return (used + align - 1) / align * align;
}

}  // namespace

size_t ScratchArena::left() const {
  return rt_.scratch_len_ - std::min(rt_.scratch_len_, next(rt_.scratch_used_, 1));
}

RemoteAddr ScratchArena::take(size_t n, size_t size, size_t align) {
  // An outer arena handing out space would lose it when the inner one ends.
  if (rt_.arena_ != this)
    fail("internal: task {}: an outer scratch arena is used while an inner one is open", rt_.tid());
  const size_t at = next(rt_.scratch_used_, align);
  const size_t room = rt_.scratch_len_ - std::min(at, rt_.scratch_len_);
  if (size && n > room / size)
    fail(
        "internal: task {}: {} x {} bytes of call arguments do not fit in its scratch area ({} "
        "of {} bytes in use)",
        rt_.tid(), n, size, rt_.scratch_used_, rt_.scratch_len_);
  rt_.scratch_used_ = at + n * size;
  return RemoteAddr(rt_.scratch_) + at;
}

}  // namespace cryo
