// The source of a lazy migration (`cryo dump --lazy-pages --port P`), as CRIU 4.2: the dump
// writes every image but the lazy pages (their pagemap entries say PE_LAZY: pages/lazy.h),
// keeps a copy of those pages, kills the tree as any dump does, and serves the copy to the
// lazy-pages daemon on request: PS_IOV_GET (vaddr, nr_pages, dst_id = the task's pid)
// answered by an ADD_F header with PE_PRESENT and the pages; CLOSE once the daemon has them all.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/fd.h"
#include "pageserver/tls.h"

namespace cryo::pages {

struct SourceOptions {
  std::string address;  // to listen on ("": all)
  uint16_t port = 0;
  pageserver::TlsOptions tls;
};

class LazySource {
 public:
  // Copies the lazy pages of the frozen tasks `pids`, which the pagemaps in `dir` list.
  LazySource(const std::string& dir, const std::vector<pid_t>& pids);
  ~LazySource();
  LazySource(const LazySource&) = delete;
  LazySource& operator=(const LazySource&) = delete;
  // Listens on o's address and port. Before the tree is killed: a daemon may connect while
  // the killed tree's memory is torn down (a restore on this host waits for its PIDs anyway).
  void listen(const SourceOptions& o);
  // Serves them until the daemon has them all. Throws if no daemon connects within the page
  // server's wait, or if the connection fails.
  void serve();
  uint64_t pages() const { return total_; }

 private:
  struct Range {
    uint64_t start, end;
    const char* copy;
  };
  std::map<pid_t, std::vector<Range>> tasks_;
  SourceOptions o_;
  Fd listener_;
  char* mem_ = nullptr;
  size_t len_ = 0;
  uint64_t total_ = 0;
};

}  // namespace cryo::pages
