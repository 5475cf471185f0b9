// The source of a lazy migration: after `cryo dump --lazy-pages --port P` has written every
// image but the lazy pages (marked so in the pagemaps: pages/lazy.h), the tree stays frozen
// and the dump serves those pages to the lazy-pages daemon on request, as CRIU 4.2 does:
// PS_IOV_GET (vaddr, nr_pages, dst_id = the task's pid) answered by an ADD_F header with
// PE_PRESENT and the pages; CLOSE once the daemon has them all.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "pageserver/tls.h"

namespace cryo::pages {

struct SourceOptions {
  std::string dir;      // the dump's images (the pagemaps say which pages are lazy)
  std::string address;  // to listen on ("": all)
  uint16_t port = 0;
  pageserver::TlsOptions tls;
};

// Serves the lazy pages of frozen tasks `pids` until the daemon closes. Throws if no daemon
// connects within the page server's wait, or if the connection fails; `connected` is set once
// a daemon connected (the tree may run elsewhere from then on).
void serve_lazy(const SourceOptions& o, const std::vector<pid_t>& pids, bool* connected);

}  // namespace cryo::pages
