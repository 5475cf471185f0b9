// A TCP connection of the page-server protocol, and the sockets it comes from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/fd.h"
#include "pageserver/tls.h"

namespace cryo::pageserver {

// Sends and receives whole buffers; any failure, a timeout or the peer hanging up throws an
// Error naming the peer.
class Connection {
 public:
  // `peer` names the other side in messages ("page server 10.0.0.2:1234").
  Connection(Fd fd, std::string peer);
  Connection(Connection&&) noexcept;
  ~Connection();
  // From now on, everything goes through TLS (handshake and checks done here).
  void start_tls(const TlsOptions& o, bool server, const std::string& host);
  bool tls() const { return tls_ != nullptr; }
  // The end of the protocol: a TLS session is closed properly.
  void end();
  // more: more data follows at once (the header of pages), so the kernel need not push this.
  void send(const void* data, size_t len, bool more = false);
  void recv(void* data, size_t len);
  // As recv(), but false when the peer closed the connection before the first byte.
  bool recv_or_eof(void* data, size_t len);
  // Moves up to `len` received bytes into the pipe `pipe` (at least one); returns how many.
  // Not with TLS.
  size_t recv_to_pipe(int pipe, size_t len);
  // Waits until the peer closes its side; throws if it sends anything instead.
  void wait_hangup();
  const std::string& peer() const { return peer_; }
  int fd() const { return fd_.get(); }

 private:
  std::string hint() const;
  ssize_t raw_send(const void* data, size_t len, int flags);
  ssize_t raw_recv(void* data, size_t len, int flags);
  Fd fd_;
  std::string peer_;
  std::unique_ptr<TlsSession> tls_;
};

// Seconds a send or receive may wait without progress before the connection is given up.
inline constexpr int kIoTimeoutSeconds = 60;
// The page server's wait for the dump's next message.
inline constexpr int kServerWaitSeconds = 600;

// Connects to ADDR:PORT (a name, an IPv4 or IPv6 address), giving up after
// kIoTimeoutSeconds.
Connection connect_to(const std::string& addr, uint16_t port);
// Takes an already connected socket (--ps-socket FD).
Connection adopt_socket(int fd);
// A listening socket on ADDR (all addresses if empty) and PORT (any free port if 0); *port
// is set to the port bound.
Fd listen_on(const std::string& addr, uint16_t* port);
// Waits for one connection on `listener`.
Connection accept_one(int listener);
// Parses a TCP port: 1 to 65535, or 0 too when `zero_ok`.
uint16_t parse_port(const std::string& text, bool zero_ok);

}  // namespace cryo::pageserver
