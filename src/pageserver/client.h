// The dump's side of the page-server protocol: a PageSink that sends the pages.
#pragma once

#include <memory>

#include "dump/page_sink.h"
#include "pageserver/connection.h"

namespace cryo::pageserver {

// Sends pages over `conn`. finish() ends the protocol (CLOSE, or FORCE_CLOSE when the socket
// was handed over with --ps-socket and outlives cryo) and waits for the server's status.
std::unique_ptr<dump::PageSink> remote_sink(Connection conn, bool shared_socket);

}  // namespace cryo::pageserver
