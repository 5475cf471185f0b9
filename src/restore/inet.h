// Inet sockets (IPv4/IPv6): listening and unconnected TCP sockets, UDP sockets.
#pragma once

#include "base/fd.h"
#include "image/fdinfo.h"

namespace cryo::restore {

Fd open_inet_socket(const inet_sk_entry& s);

}  // namespace cryo::restore
