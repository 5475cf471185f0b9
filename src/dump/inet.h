// Inet sockets (IPv4/IPv6) that need no connection state: TCP sockets that listen or are
// not connected yet; UDP, UDP-Lite, ICMP ("ping") and raw sockets, bound or connected, with
// their options. Established TCP is refused, and so is data not sent or not read yet.
#pragma once

#include <sys/types.h>

#include <map>
#include <utility>

#include "image/fdinfo.h"
#include "kernel/sock_diag.h"

namespace cryo::dump {

// inet_diag's view of the sockets of a (family, protocol), asked for once per dump.
using InetDiags = std::map<std::pair<int, int>, std::map<uint32_t, kernel::InetDiag>>;

void dump_inet_socket(pid_t pid, int fd, int sk, uint32_t ino, uint32_t id, uint32_t flags,
                      file_entry* e, InetDiags& diags);

}  // namespace cryo::dump
