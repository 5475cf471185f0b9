#include "pageserver/connection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "base/error.h"
#include "base/log.h"

namespace cryo::pageserver {
namespace {

void set_timeouts(int fd) {
  timeval tv{kIoTimeoutSeconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  // Answers are small and awaited: never held back.
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

std::string describe(const sockaddr* sa, socklen_t len) {
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  if (::getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return "?";
  return sa->sa_family == AF_INET6 ? fmt::format("[{}]:{}", host, serv)
                                   : fmt::format("{}:{}", host, serv);
}

[[noreturn]] void lost(const std::string& peer, const char* what, int err) {
  if (err == EAGAIN || err == EWOULDBLOCK)
    fail(
        "the connection to {} timed out ({} s without progress while {}): check that it is "
        "alive and reachable",
        peer, kIoTimeoutSeconds, what);
  fail("lost the connection to {} while {}: {}", peer, what, std::strerror(err));
}

}  // namespace

Connection::Connection(Fd fd, std::string peer) : fd_(std::move(fd)), peer_(std::move(peer)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection::~Connection() = default;

void Connection::start_tls(const TlsOptions& o, bool server, const std::string& host) {
  tls_ = std::make_unique<TlsSession>(fd_.get(), o, server, host, peer_);
}

void Connection::end() {
  if (tls_) tls_->bye();
}

std::string Connection::hint() const {
  // With TLS 1.3 a peer checks this side's certificate after the handshake has completed
  // here: its refusal shows as a hang-up.
  return tls_ ? " (over TLS: the peer may have refused this side's certificate; see its log)" : "";
}

ssize_t Connection::raw_send(const void* data, size_t len, int flags) {
  return tls_ ? tls_->send(data, len) : ::send(fd_.get(), data, len, flags);
}

ssize_t Connection::raw_recv(void* data, size_t len, int flags) {
  return tls_ ? tls_->recv(data, len) : ::recv(fd_.get(), data, len, flags);
}

void Connection::send(const void* data, size_t len, bool more) {
  auto p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = raw_send(p, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) lost(peer_, "sending", n < 0 ? errno : EPIPE);
    p += n;
    len -= static_cast<size_t>(n);
  }
}

bool Connection::recv_or_eof(void* data, size_t len) {
  auto p = static_cast<char*>(data);
  size_t got = 0;
  while (got < len) {
    ssize_t n = raw_recv(p + got, len - got, MSG_WAITALL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) lost(peer_, "receiving", errno);
    if (n == 0) {
      if (got == 0) return false;
      fail("lost the connection to {}: it hung up in the middle of a message{}", peer_, hint());
    }
    got += static_cast<size_t>(n);
  }
  return true;
}

void Connection::recv(void* data, size_t len) {
  if (!recv_or_eof(data, len)) fail("lost the connection to {}: it hung up{}", peer_, hint());
}

size_t Connection::recv_to_pipe(int pipe, size_t len) {
  for (;;) {
    ssize_t n = ::splice(fd_.get(), nullptr, pipe, nullptr, len, SPLICE_F_MOVE);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) lost(peer_, "receiving", errno);
    if (n == 0) fail("lost the connection to {}: it hung up in the middle of a message", peer_);
    return static_cast<size_t>(n);
  }
}

void Connection::wait_hangup() {
  char c;
  ssize_t n;
  do n = raw_recv(&c, 1, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) lost(peer_, "waiting for it to hang up", errno);
  if (n > 0) fail("{} sent data after the end of the protocol", peer_);
}

namespace {

// The addresses ADDR:PORT stands for (ADDR empty: every local address), freed on return.
using AddrList = std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)>;
AddrList resolve(const std::string& addr, uint16_t port, bool passive) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  if (addr.empty()) hints.ai_family = AF_INET6;  // [::] takes IPv4 too
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(addr.empty() ? nullptr : addr.c_str(), std::to_string(port).c_str(),
                         &hints, &res);
  if (rc != 0)
    fail("cannot resolve page server address '{}': {}: give {}", addr, ::gai_strerror(rc),
         passive ? "a local IP address" : "a host name or an IP address");
  return AddrList(res, &::freeaddrinfo);
}

}  // namespace

Connection connect_to(const std::string& addr, uint16_t port) {
  std::string tried;
  int err = 0;
  AddrList list = resolve(addr, port, false);
  for (addrinfo* ai = list.get(); ai; ai = ai->ai_next) {
    Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) {
      err = errno;
      continue;
    }
    set_timeouts(fd.get());  // SO_SNDTIMEO bounds connect() too
    std::string peer = "page server " + describe(ai->ai_addr, ai->ai_addrlen);
    int c;
    do c = ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
    while (c < 0 && errno == EINTR);
    if (c == 0) {
      log::info("connected to {}", peer);
      return Connection(std::move(fd), peer);
    }
    err = errno;
    tried = peer;
  }
  if (err == EINPROGRESS || err == EAGAIN) err = ETIMEDOUT;
  fail(
      "cannot connect to {}: {}: start 'cryo page-server' (or criu page-server) there first, "
      "or fix --address/--port",
      tried.empty() ? addr : tried, std::strerror(err));
}

Connection adopt_socket(int fd) {
  int type = 0;
  socklen_t tlen = sizeof(type);
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_STREAM)
    fail(
        "--ps-socket {}: not a connected stream socket (give the descriptor of a TCP "
        "connection to the page server)",
        fd);
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0)
    fail_sys("--ps-socket {}: the socket is not connected", fd);
  set_timeouts(fd);
  return Connection(Fd(fd), "page-server peer " + describe(reinterpret_cast<sockaddr*>(&ss), len) +
                                " (--ps-socket)");
}

Fd listen_on(const std::string& addr, uint16_t* port) {
  int err = 0;
  AddrList list = resolve(addr, *port, true);
  for (addrinfo* ai = list.get(); ai; ai = ai->ai_next) {
    Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) {
      err = errno;
      continue;
    }
    int one = 1, zero = 0;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6 && addr.empty())
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) < 0 || ::listen(fd.get(), 1) < 0) {
      err = errno;
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0)
      *port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    return fd;
  }
  fail("cannot listen on {}:{}: {}{}", addr.empty() ? "*" : addr, *port, std::strerror(err),
       err == EADDRINUSE ? ": another program uses that port; choose another --port"
                         : ": check --address and --port");
}

Connection accept_one(int listener) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  int fd;
  do fd = ::accept4(listener, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) fail_sys("cannot accept a connection on the page server's socket");
  Fd owned(fd);
  set_timeouts(fd);
  // A dump may think a while between two images (a task's files): wait longer for it.
  timeval tv{kServerWaitSeconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string peer = "the dump at " + describe(reinterpret_cast<sockaddr*>(&ss), len);
  log::info("page server: connection from {}", peer);
  return Connection(std::move(owned), peer);
}

uint16_t parse_port(const std::string& text, bool zero_ok) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end || errno || v < (zero_ok ? 0 : 1) || v > 65535)
    fail("bad port '{}' for --port: give a TCP port number, {} to 65535", text, zero_ok ? 0 : 1);
  return static_cast<uint16_t>(v);
}

}  // namespace cryo::pageserver
