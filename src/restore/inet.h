// Inet sockets (IPv4/IPv6): listening, unconnected and (net/tcp_repair.h) connected TCP
// sockets; UDP, ICMP and raw sockets.
#pragma once

#include <vector>

#include "base/fd.h"
#include "image/fdinfo.h"
#include "net/tcp_repair.h"
#include "restore/plan.h"

namespace cryo::restore {

// `stream`: the state of a connected TCP socket (null: restored closed, not bound).
Fd open_inet_socket(const inet_sk_entry& s, const net::TcpStream* stream = nullptr);

// The connections of the images' connected TCP sockets, for the network lock. Throws when
// the restore cannot rebuild them: without --tcp-established (nor --tcp-close), or when a
// socket's tcp-stream image is missing.
std::vector<net::Connection> tcp_connections(const Plan& plan, bool tcp_established);

}  // namespace cryo::restore
