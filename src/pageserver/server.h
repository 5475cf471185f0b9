// cryo page-server: receives the pages of one dump over TCP and writes them as a local dump
// would (pagemap-*.img and pages-N.img, N from pageserver::kServerPagesIdBase on).
#pragma once

#include <cstdint>
#include <string>

#include "pageserver/tls.h"

namespace cryo::pageserver {

struct ServerOptions {
  std::string dir;      // the images directory; its "parent" link names the parent images
  std::string prev;     // --prev-images-dir: made the "parent" link of `dir` (as CRIU does)
  std::string address;  // empty: every address
  uint16_t port = 0;    // 0: any free port (logged)
  bool daemon = false;  // fork, and return in the parent once listening
  int status_fd = -1;   // gets one zero byte once the server listens (CRIU's --status-fd)
  int ps_socket = -1;   // serve this connected socket instead of listening
  TlsOptions tls;       // the client's certificate must name `address`, when given
};

// Serves one connection. Returns the exit status: 0 once the dump ended the protocol and its
// images are written; throws Error on a failure.
int run_server(const ServerOptions& o);

}  // namespace cryo::pageserver
