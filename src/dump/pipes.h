// Pipes and FIFOs: each open end is a files.img entry; the data buffered in a pipe is saved
// once per pipe (pipes-data.img, fifo-data.img) without being consumed.
#pragma once

#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

#include "pipe-data.pb.h"

namespace cryo::dump {

class PipeData {
 public:
  // Saves the content of the pipe behind fd `fd` of task `pid`, once per pipe inode.
  void add(pid_t pid, int fd, uint64_t ino, bool fifo);
  void write(const std::string& dir);

 private:
  struct Saved {
    pipe_data_entry entry;
    std::string bytes;
    bool fifo;
  };
  std::set<uint64_t> seen_;
  std::vector<Saved> saved_;
};

}  // namespace cryo::dump
