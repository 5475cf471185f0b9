// What the fuzzers know of each image file: its magic, the message type of its entries and the
// raw bytes some entries carry after them, and how a file splits into entries.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/message.h>

namespace cryo::fuzz {

// Raw bytes that follow an entry, and which of its fields gives their count.
enum class Raw { kNone, kPipeData, kSkQueue, kGhost };

struct ImageKind {
  const char* pattern;  // "core-N.img": N stands for a decimal or hex number
  uint32_t magic;       // 0: a raw file (pages-N.img) with no magic and no entries
  bool common;          // preceded by the common magic
  const google::protobuf::Message* first;  // type of the first entry
  const google::protobuf::Message* rest;   // type of the others
  Raw raw;
};

// The kind of image `name`, or nullptr for a file the fuzzers do not know.
const ImageKind* kind_of(std::string_view name);

// "core-1234.img" -> "core-N.img": names in a signature that does not depend on the PIDs.
std::string pattern_of(std::string_view name);

// One entry of a file: at `off` its u32 length, then `len` bytes of message, then `raw` bytes.
struct Span {
  size_t off;
  uint32_t len;
  size_t raw;
  size_t end() const { return off + 4 + len + raw; }
};

struct Layout {
  size_t header = 0;  // magic bytes
  std::vector<Span> entries;
  size_t tail = 0;  // offset of what could not be split into entries (== size when whole)
  bool whole = false;
};

// Splits `data` into entries as far as it can (a corrupt file splits only partly).
Layout split(const ImageKind& kind, std::string_view data);

// A new empty message of the type of entry `index` of a file of `kind`.
std::unique_ptr<google::protobuf::Message> new_entry(const ImageKind& kind, size_t index);

// Raw bytes that follow entry `index` holding `m` (Raw rules above).
size_t raw_after(const ImageKind& kind, size_t index, const google::protobuf::Message& m);

}  // namespace cryo::fuzz
