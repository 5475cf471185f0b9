// CRIU's RPC: `cryo swrk FD` and `cryo service`, speaking CRIU 4.2's rpc.proto (criu_req and
// criu_resp, one message per SOCK_SEQPACKET packet) as go-criu (runc, podman), libcriu and
// pycriu do. Each request's criu_opts become the command line's options, so a request does
// what `cryo dump|restore|check` does with the same options, and refuses what it refuses.
#pragma once

#include <functional>

#include "cli/options.h"

namespace cryo::rpc {

// Runs one action as the command line does (main.cc's dispatch); throws Error.
using Execute = std::function<int(const cli::Options&)>;

// `cryo swrk FD`: serves the requests that arrive on the inherited socket FD.
int swrk(const cli::Options& o, const Execute& exec);

// `cryo service [--address PATH] [-d] [--pidfile FILE]`: listens on a unix SOCK_SEQPACKET
// socket and serves each connection in a worker process of its own.
int service(const cli::Options& o, const Execute& exec);

}  // namespace cryo::rpc
