// The in-process fuzz targets: every step of a restore that reads images and needs no process.
#pragma once

#include <string>

namespace cryo::fuzz {

// Decodes every image of `dir` with cryo's reader (entries and the raw bytes that follow
// them), then plans a restore of `dir` (restore::load_plan) and runs the readers the restore
// runs before it creates files: file locks, shared memory, terminal data, memfd inodes, pipe
// and FIFO data, socket queues. Throws cryo::Error when the images are refused.
void run_parsers(const std::string& dir);

}  // namespace cryo::fuzz
