// `cryo show DIR`: what an images directory holds, for a person: the process tree, each
// process's memory, files and sockets, and totals.
#pragma once

#include <string>

namespace cryo::imgtool {

// The summary of the images in dir. Throws cryo::Error when dir is not an images directory
// or an image it needs is missing or corrupt.
std::string show(const std::string& dir);

}  // namespace cryo::imgtool
