// `cryo lazy-pages`: the daemon of a lazy restore (pages/lazy.h). It takes the restored
// tasks' userfaultfds, fills each fault with UFFDIO_COPY from the local images or from the
// source (`cryo dump --lazy-pages --port P`, PS_IOV_GET of CRIU 4.2's page-server protocol),
// pushes the other pages meanwhile, follows the tree's forks, mremaps, munmaps and
// MADV_DONTNEEDs, and exits once every page is in. If the source fails, it kills the tree.
#pragma once

#include <cstdint>
#include <string>

#include "pageserver/tls.h"

namespace cryo::pages {

struct DaemonOptions {
  std::string dir;           // -D: the images
  std::string work_dir;      // -W: where lazy-pages.socket is made ("": dir)
  bool page_server = false;  // pages on the source: --address, --port
  std::string address;
  uint16_t port = 0;
  pageserver::TlsOptions tls;
};

int run_daemon(const DaemonOptions& o);

}  // namespace cryo::pages
