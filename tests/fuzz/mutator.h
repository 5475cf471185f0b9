// Mutations of an image set, deterministic given the random generator's state:
//  - bytes: bit flips, interesting bytes and u32s (0, 0xff, 0x7f, 0x80, length boundaries),
//    truncation, extension, insertion, erasure, a file deleted or emptied;
//  - entries: a length prefix set to a boundary, entries duplicated, removed, swapped, copied
//    from another file, a whole file replaced by another one of the set;
//  - fields (the schema of proto/, by reflection): a field set to a boundary value of its type
//    or to the value the same field has in another entry, cleared, repeated fields grown,
//    shrunk and reordered;
//  - wire format: varints replaced by boundary or malformed encodings, tags given another wire
//    type or an unknown field number, length-delimited fields mis-sized, fields dropped or
//    repeated.
// Each mutation has a signature (what was changed, without PIDs, offsets or values) that
// known-findings lists match, and a detail for the reader.
#pragma once

#include <string>
#include <vector>

#include "image_set.h"
#include "rng.h"

namespace cryo::fuzz {

struct Mutation {
  std::string signature;  // e.g. "field-set:core-N.img:tc.task_state"
  std::string detail;     // e.g. "core-42.img entry 0: tc.task_state 1 -> 4294967295"
};

// Applies `count` mutations to `set`.
std::vector<Mutation> mutate(ImageSet& set, Rng& rng, int count);

}  // namespace cryo::fuzz
