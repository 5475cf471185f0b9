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

// The dump keeps, in its own images directory, the pagemap entries it sent for each task (no
// pages): the next dump of the chain learns from it which pages the server's parent images
// hold (dump/mem_track.h). Named so that restore does not take it for the task's pagemap.
constexpr const char* kSentPagemapPrefix = "cryo-sent-pagemap-";
std::string sent_pagemap_name(uint64_t pid);

// Connects to the page server (or takes the --ps-socket) and returns a sink sending the
// pages there. finish() ends the protocol (CLOSE, or FORCE_CLOSE on a --ps-socket, which may
// outlive cryo) and waits for the server's status. With `record_dir`, each task's entries are
// kept there too (sent_pagemap_name).
std::unique_ptr<dump::PageSink> remote_sink(const ClientOptions& o, const std::string& record_dir);

}  // namespace cryo::pageserver
