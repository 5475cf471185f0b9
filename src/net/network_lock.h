// The network lock: while a tree's TCP connections are dumped and restored, the packets of
// those connections are dropped, so that neither end answers the other with a reset (the
// socket is gone, or in repair mode) and the peer just retransmits until the restore is done.
// The lock is a packet filter table (nftables, cryo's default) or a chain (iptables) named
// after the tree's root PID; a dump that kills the tree leaves it in place for the restore.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cryo::net {

// inventory_entry.network_lock_method values (CRIU's).
enum class LockMethod : uint32_t { kIptables = 0, kNftables = 1, kSkip = 2 };
// "iptables", "nftables", "skip" (the --network-lock values); throws on another word.
LockMethod parse_lock_method(const std::string& word);
const char* lock_method_name(LockMethod m);

// Packets with this mark pass the lock: those cryo sends a restored socket itself (the FIN
// or ACK that puts it back in a half-closed state). The value is CRIU's.
constexpr uint32_t kLockMark = 0xC114;

// One end of a TCP connection as the packet filter sees it.
struct Connection {
  int family = 0;             // AF_INET or AF_INET6 (an IPv4-mapped IPv6 address is given as IPv4)
  std::string local, remote;  // addresses, as text
  uint16_t local_port = 0, remote_port = 0;
  std::string show() const;  // "L:P -> R:P"
};

class NetworkLock {
 public:
  NetworkLock(LockMethod method, pid_t root) : method_(method), root_(root) {}
  ~NetworkLock();  // lifts the lock unless kept
  NetworkLock(const NetworkLock&) = delete;
  NetworkLock& operator=(const NetworkLock&) = delete;

  // Drops the packets of these connections from now on, besides those locked before. Throws
  // naming the cause (the tool missing, the kernel refusing).
  void add(const std::vector<Connection>& conns);
  // Lifts the lock now (a failure is logged: a lock that cannot be lifted is named with the
  // command that lifts it).
  void lift();
  // The tree was killed: the lock stays until a restore lifts it.
  void keep() { kept_ = true; }
  // The name of the table (nftables) or chain (iptables).
  std::string name() const;

 private:
  LockMethod method_;
  pid_t root_;
  bool taken_ = false, kept_ = false;
};

// Removes what a lock of tree `root` left (a dump that killed the tree; a restore lifts it
// once the tree runs). Quiet when there is nothing.
void lift_lock(LockMethod method, pid_t root);

// "" when an nftables lock works here (a table and rules are made and removed), else why not.
std::string probe_nftables_lock();

}  // namespace cryo::net
