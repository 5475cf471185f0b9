// What the kernel's sock_diag netlink interface says of sockets (UNIX_DIAG for now).
#pragma once

#include <linux/packet_diag.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cryo::kernel {

// ioctl on a unix socket bound to a path: an O_PATH fd on its socket file (linux/un.h's
// SIOCUNIXFILE, SIOCPROTOPRIVATE + 0; that header clashes with <sys/un.h>).
constexpr unsigned long kSiocUnixFile = 0x89E0;

// The kernel's dev_t as sock_diag reports it (12-bit major, 20-bit minor) matches `st_dev`.
bool same_kernel_dev(uint32_t kdev, uint64_t st_dev);

struct UnixDiag {
  uint32_t ino = 0;
  uint8_t type = 0, state = 0;
  std::string name;                 // sun_path bytes; empty if unbound
  uint32_t peer = 0;                // peer's inode
  std::vector<uint32_t> icons;      // a listener's connections not yet accepted
  uint32_t rqueue = 0, wqueue = 0;  // for a listener: backlog length and limit
  uint8_t shutdown = 0;
  uint32_t vfs_dev = 0, vfs_ino = 0;  // the socket file a path name was bound to (0: none)
};

// An inet socket as inet_diag shows it (bound or connected ones only).
struct InetDiag {
  uint32_t ino = 0;
  uint8_t state = 0, shutdown = 0;
  uint32_t rqueue = 0, wqueue = 0;  // bytes queued to read, and to send (a corked UDP socket)
};

// A packet socket (linux/packet_diag.h's records, kept as the kernel gives them).
struct PacketDiag {
  uint32_t ino = 0;
  uint8_t type = 0;
  uint16_t proto = 0;  // host order
  bool has_info = false, has_rx_ring = false, has_tx_ring = false, has_fanout = false;
  packet_diag_info info{};
  std::vector<packet_diag_mclist> mclist;
  packet_diag_ring rx_ring{}, tx_ring{};
  uint32_t fanout = 0;
};

// A netlink socket.
struct NetlinkDiag {
  uint32_t ino = 0;
  uint8_t protocol = 0, state = 0;
  uint32_t portid = 0, dst_portid = 0, dst_group = 0;
  std::vector<uint32_t> groups;  // bitmap of the groups it joined
};

// Every socket of a family (inet: of one protocol) of cryo's network namespace, by inode.
std::map<uint32_t, InetDiag> inet_diag_all(int family, int protocol);
std::map<uint32_t, PacketDiag> packet_diag_all();
std::map<uint32_t, NetlinkDiag> netlink_diag_all();

// Every unix socket of the caller's network namespace, by inode.
std::map<uint32_t, UnixDiag> unix_diag_all();

// A unix socket name as people write it: @ for an abstract one, "unnamed" for none.
std::string unix_name_printable(const std::string& name);

}  // namespace cryo::kernel
