// `cryo dedup` and --auto-dedup: the pages of an image chain that a later image holds anew
// are punched out of the earlier images' pages-N.img (fallocate PUNCH_HOLE|KEEP_SIZE, so
// offsets stay), as CRIU does. The earlier images then serve only the chain they are part of.
#pragma once

#include <cstdint>
#include <string>

namespace cryo::dump {

// Punches, for every task's pagemap-PID.img in `dir`, the pages it holds itself out of the
// images its "parent" link leads to (through pages those mark as in their own parent).
// Returns the number of pages punched.
uint64_t dedup(const std::string& dir);

}  // namespace cryo::dump
