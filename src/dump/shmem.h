// Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS): one object may be mapped by several
// tasks. Its content is dumped once, into pagemap-shmem-ID.img + pages-N.img, where ID is the
// object's inode and page addresses are offsets in the object.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>

#include "dump/page_sink.h"

namespace cryo::dump {

// Pages of the objects (CRIU's shpages_* statistics): all of their pages, and those written.
struct ShmemPages {
  uint64_t scanned = 0;
  uint64_t written = 0;
};

class ShmemTable {
 public:
  // Notes that task `pid` maps object `inode` at [start, end).
  void add(pid_t pid, uint64_t inode, uint64_t start, uint64_t end);
  // Notes an object reachable through a /proc link (a memfd: /proc/PID/fd/N).
  void add_link(uint64_t inode, const std::string& link, pid_t pid);
  // Dumps each object once, into `sink`.
  ShmemPages dump(PageSink& sink, uint32_t* next_pages_id);

 private:
  struct Where {
    pid_t pid;
    std::string link;  // /proc/PID/map_files/START-END or /proc/PID/fd/N
  };
  std::map<uint64_t, Where> objects_;
};

}  // namespace cryo::dump
