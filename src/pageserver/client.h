// The dump's side of the page-server protocol: a PageSink that sends the pages.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dump/page_sink.h"
#include "pageserver/connection.h"

namespace cryo::pageserver {

struct ClientOptions {
  std::string address;  // the server's (also the name its TLS certificate must carry)
  uint16_t port = 0;
  int ps_socket = -1;  // a connected socket to use instead (--ps-socket)
  TlsOptions tls;
};

// Connects to the page server (or takes the --ps-socket) and returns a sink sending the
// pages there. finish() ends the protocol (CLOSE, or FORCE_CLOSE on a --ps-socket, which may
// outlive cryo) and waits for the server's status.
std::unique_ptr<dump::PageSink> remote_sink(const ClientOptions& o);

}  // namespace cryo::pageserver
