// Inet sockets (IPv4/IPv6) that need no connection state: TCP sockets that listen or are
// not connected yet, and UDP sockets, bound or connected. Established TCP is refused.
#pragma once

#include <sys/types.h>

#include "image/fdinfo.h"

namespace cryo::dump {

void dump_inet_socket(pid_t pid, int fd, int sk, uint32_t ino, uint32_t id, uint32_t flags,
                      file_entry* e);

}  // namespace cryo::dump
