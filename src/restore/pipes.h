// Pipes and FIFOs on restore: each pipe is made once in cryo (a FIFO is opened at its path)
// and filled with its saved data; every open file on it is a new open of cryo's end, with its
// own status flags.
#pragma once

#include <cstdint>
#include <string>

namespace cryo::restore {

// Puts a pipe's saved data back through `fd`, cryo's own write end (made non-blocking): data
// the pipe cannot hold fails instead of blocking for ever.
void put_pipe_data(int fd, const std::string& data, uint32_t pipe_id);

}  // namespace cryo::restore
