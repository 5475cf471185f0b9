// Established TCP connections, read and rebuilt with the kernel's TCP_REPAIR mode: sequence
// numbers of both queues, the queues' contents (unacknowledged data included), the options
// agreed at the handshake (MSS, window scaling, SACK, timestamps), the window values, and
// the half-closed states (a FIN sent, received, or both). The image is CRIU's
// tcp-stream-INO.img: a tcp_stream_entry, then the receive and the send queue's bytes.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "base/fd.h"
#include "net/network_lock.h"
#include "tcp-stream.pb.h"

namespace cryo::net {

struct TcpStream {
  tcp_stream_entry e;
  std::string inq, outq;  // e.inq_len and e.outq_len bytes
};

// "tcp-stream-INO.img" for the socket of inode `ino`.
std::string tcp_stream_image(uint32_t ino);
void write_tcp_stream(const std::string& dir, uint32_t ino, const TcpStream& t);
TcpStream read_tcp_stream(const std::string& dir, uint32_t ino);

// TCP states (the kernel's numbers) a connection can be dumped in: connected, possibly
// half-closed.
bool dumpable_tcp_state(int state);
const char* tcp_state_name(int state);

// The sockets a dump puts in repair mode, under one network lock. Destroyed without a
// commit (the dump failed) or committed with the tree running on, the sockets leave repair
// mode and the lock is lifted; committed with the tree killed, the sockets close in repair
// mode (sending nothing to the peer) and the lock stays for the restore to lift.
class RepairSession {
 public:
  RepairSession(LockMethod method, pid_t root) : lock_(method, root) {}
  ~RepairSession();
  RepairSession(const RepairSession&) = delete;
  RepairSession& operator=(const RepairSession&) = delete;

  // Locks connection `c` of socket `sk` (cryo's copy of a task's) in TCP state `state`, puts
  // the socket in repair mode and reads its state. Throws naming `where`.
  TcpStream dump(int sk, int state, const Connection& c, const std::string& where);
  void commit(bool killed);

 private:
  void release();
  NetworkLock lock_;
  std::vector<Fd> socks_;
  std::vector<int> reuse_;  // their SO_REUSEADDR, which leaving repair mode clears
  bool done_ = false;
};

// Restore, in three steps around the bind that open_inet_socket does.
// Before bind: repair mode, so that the socket may take its dumped address and port again.
void repair_on(int sk, uint32_t id);
// After bind: connects socket `sk` to `dst` in repair mode with the dumped sequence numbers,
// options, queues and windows, puts it in its dumped (half-closed) `state`, and leaves repair
// mode (with SO_REUSEADDR `reuse`). `local`/`remote` address the packets that move it to a
// half-closed state.
void restore_tcp_stream(int sk, uint32_t id, int state, const TcpStream& t,
                        const sockaddr_storage& local, const sockaddr_storage& remote,
                        socklen_t len, bool reuse);

}  // namespace cryo::net
