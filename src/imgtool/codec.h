// Image file <-> JSON, as crit does it: {"magic": NAME, "entries": [...]}, each entry the
// protobuf message's set fields in field-number order (enums by name, bytes in base64, the
// (criu) field options of proto/opts.proto applied when pretty) plus "extra" for the raw bytes
// some images carry after an entry. Messages are walked with protobuf reflection.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <google/protobuf/descriptor.h>

#include "imgtool/json.h"

namespace cryo::imgtool {

// One kind of image file crit knows and cryo's schema has the message of.
struct Kind {
  const char* name;  // crit's magic name, e.g. "CORE"
  uint32_t magic;
  const google::protobuf::Descriptor* (*message)();  // every entry's (the first's, below)
  // The rest of the entries: pagemap_entry after pagemap_head, ghost_chunk_entry after
  // ghost_file_entry; null when all entries are of one message.
  const google::protobuf::Descriptor* (*rest)() = nullptr;
  // The field of the entry giving the size of the raw bytes after it ("extra"), or null.
  const char* extra_len = nullptr;
  bool ghost = false;  // ghost-file: chunks, or the whole rest of the file as one extra
  // The extra bytes are padded with zeros to a multiple of this (IPCNS_SHM: 4); crit reads
  // such an extra as far as the file goes.
  unsigned extra_align = 1;
  // TCP_STREAM: the extra is two byte strings, {"inq": inq_len bytes, "outq": outq_len}.
  bool tcp_queues = false;
  // IPCNS_SEM: the extra is nsems u16 values padded to 8 bytes, a JSON list of numbers.
  bool sem_values = false;
  // IPCNS_MSG: the extra is qnum messages, each a size-prefixed entry of this message and its
  // msize bytes padded to 8; in JSON a list: a message's object, then its bytes, ...
  const google::protobuf::Descriptor* (*messages)() = nullptr;
};

const Kind* kind_by_magic(uint32_t magic);
const Kind* kind_by_name(std::string_view name);

// Decodes a whole image file into crit's JSON text (as json.dump writes it, without the new
// line crit adds on stdout). Throws cryo::Error naming the fault (unknown magic, truncated
// or corrupt entry).
std::string decode_image(std::string_view data, bool pretty);
// Encodes crit's JSON text of an image (plain or pretty). Throws cryo::Error naming the
// entry and field that is wrong, or where the JSON is invalid.
std::string encode_image(std::string_view json_text);

// Exposed for the tests: crit's bytes encodings.
std::string base64_lines(std::string_view data);  // base64.encodebytes
std::string base64_decode(std::string_view text);
std::string qp_encode(std::string_view data);  // quopri.encodestring
std::string qp_decode(std::string_view text);

}  // namespace cryo::imgtool
