// TLS for the page-server connection (--tls), with GnuTLS, as CRIU does: X.509 certificates on
// both sides (the server requires the client's), each side checking the other's against the
// trusted CAs, and the client checking that the server's certificate names --address.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

namespace cryo::pageserver {

struct TlsOptions {
  bool enabled = false;
  // Empty: CRIU's defaults, /etc/pki/CA/cacert.pem (plus the system's trusted CAs),
  // /etc/pki/CA/cacrl.pem (if readable), /etc/pki/criu/cert.pem, /etc/pki/criu/private/key.pem.
  std::string cacert, cacrl, cert, key;
  bool no_cn_verify = false;  // do not check that the peer's certificate names its address
};

class TlsSession {
 public:
  // Runs the handshake on the connected socket `fd` and verifies the peer; `host` is the name
  // the peer's certificate must carry (empty: not checked). `peer` names it in messages.
  TlsSession(int fd, const TlsOptions& o, bool server, const std::string& host,
             const std::string& peer);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;
  // As send()/recv(): bytes moved, 0 at the peer's end (recv), -1 with errno set.
  ssize_t send(const void* data, size_t len);
  ssize_t recv(void* data, size_t len);
  // Tells the peer the session ends (after the protocol's last message).
  void bye();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cryo::pageserver
