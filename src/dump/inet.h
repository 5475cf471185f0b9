// Inet sockets (IPv4/IPv6): TCP sockets that listen, are not connected yet, or (with
// --tcp-established, net/tcp_repair.h) are connected; UDP, UDP-Lite, ICMP ("ping") and raw
// sockets, bound or connected, with their options. Datagrams not sent or not read yet are
// refused.
#pragma once

#include <sys/types.h>

#include <map>
#include <utility>

#include "image/fdinfo.h"
#include "kernel/sock_diag.h"
#include "net/tcp_repair.h"

namespace cryo::dump {

// inet_diag's view of the sockets of a (family, protocol), asked for once per dump.
using InetDiags = std::map<std::pair<int, int>, std::map<uint32_t, kernel::InetDiag>>;

// How connected TCP sockets are dumped, and where their state goes.
struct TcpDump {
  net::RepairSession* session = nullptr;  // --tcp-established
  bool close = false;                     // --tcp-close: no state, restored closed
  bool skip_in_flight = false;
  std::map<uint32_t, net::TcpStream>* streams = nullptr;  // by socket inode
};

void dump_inet_socket(pid_t pid, int fd, int sk, uint32_t ino, uint32_t id, uint32_t flags,
                      file_entry* e, InetDiags& diags, const TcpDump& tcp);

}  // namespace cryo::dump
