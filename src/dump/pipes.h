// Pipes and FIFOs: each open end is a files.img entry; the data buffered in a pipe is saved
// once per pipe (pipes-data.img, fifo-data.img) without being consumed.
#pragma once

#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

#include "base/fd.h"
#include "pipe-data.pb.h"

namespace cryo::dump {

class FdContext;

class PipeData {
 public:
  // Saves the content of the pipe (inode `ino`) fd `c` is an end of, once per pipe.
  void add(FdContext& c, uint64_t ino, bool fifo);
  void write(const std::string& dir);

 private:
  struct Saved {
    pipe_data_entry entry;
    std::string bytes;
    bool fifo;
  };
  std::set<uint64_t> seen_;
  std::vector<Saved> saved_;
  // cryo's pipe the data is copied through, emptied after each copy.
  Fd copy_rd_, copy_wr_;
  int copy_size_ = 0;
};

}  // namespace cryo::dump
