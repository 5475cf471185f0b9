#include "restore/inet.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/icmp.h>
#include <linux/udp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <vector>

#include <cstring>

#include "base/error.h"
#include "base/log.h"
#include "image/fdinfo.h"
#include "image/image.h"
#include "restore/file_kind.h"
#include "restore/files.h"
#include "restore/sockets.h"

namespace cryo::restore {
namespace {

socklen_t join(uint32_t family, const google::protobuf::RepeatedField<uint32_t>& words,
               uint32_t port, sockaddr_storage* a) {
  std::memset(a, 0, sizeof *a);
  if (family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(a);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(port));
    if (words.size() >= 1) in->sin_addr.s_addr = words.Get(0);
    return sizeof *in;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(a);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(static_cast<uint16_t>(port));
  if (words.size() >= 4) std::memcpy(&in6->sin6_addr, words.data(), 16);
  return sizeof *in6;
}

void set_int(int fd, int level, int name, int v, const char* what, uint32_t id) {
  if (::setsockopt(fd, level, name, &v, sizeof v) < 0)
    fail_sys("socket {}: cannot set {}", id, what);
}

}  // namespace

namespace {

bool tcp_connected(const inet_sk_entry& s) {
  return s.type() == SOCK_STREAM && s.proto() == IPPROTO_TCP && s.state() != image::kSkClose &&
         s.state() != image::kSkListen;
}

std::string addr_text(uint32_t family, const google::protobuf::RepeatedField<uint32_t>& words) {
  sockaddr_storage a;
  join(family, words, 0, &a);
  char buf[INET6_ADDRSTRLEN] = "?";
  if (family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&a)->sin_addr, buf, sizeof buf);
  else
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&a)->sin6_addr, buf, sizeof buf);
  return buf;
}

net::Connection connection_of(const inet_sk_entry& s) {
  net::Connection c;
  c.family = static_cast<int>(s.family());
  c.local = addr_text(s.family(), s.src_addr());
  c.remote = addr_text(s.family(), s.dst_addr());
  c.local_port = static_cast<uint16_t>(s.src_port());
  c.remote_port = static_cast<uint16_t>(s.dst_port());
  // An IPv4-mapped IPv6 address: its packets are IPv4 ones.
  for (std::string* a : {&c.local, &c.remote})
    if (c.family == AF_INET6 && a->rfind("::ffff:", 0) == 0 && a->find('.') != std::string::npos)
      *a = a->substr(7);
  if (c.local.find(':') == std::string::npos) c.family = AF_INET;
  return c;
}

}  // namespace

std::vector<net::Connection> tcp_connections(const Plan& plan, bool tcp_established) {
  std::vector<net::Connection> out;
  for (const auto& [id, f] : plan.files) {
    if (!f.has_isk() || !tcp_connected(f.isk())) continue;
    const inet_sk_entry& s = f.isk();
    net::Connection c = connection_of(s);
    if (!tcp_established && !plan.tcp_close)
      fail(
          "the images hold a connected TCP socket ({}, {}): restore connections with "
          "--tcp-established, or closed with --tcp-close",
          c.show(), net::tcp_state_name(static_cast<int>(s.state())));
    if (!plan.tcp_close && !image::exists(plan.dir, net::tcp_stream_image(s.ino())))
      fail(
          "TCP socket {} ({}) was dumped without its state ({} is missing; a dump with "
          "--tcp-close saves none): restore it closed with --tcp-close",
          id, c.show(), net::tcp_stream_image(s.ino()));
    out.push_back(c);
  }
  return out;
}

Fd open_inet_socket(const inet_sk_entry& s, const net::TcpStream* stream) {
  if (s.family() != AF_INET && s.family() != AF_INET6)
    fail("socket {}: unknown family {}", s.id(), s.family());
  Fd fd(::socket(static_cast<int>(s.family()), static_cast<int>(s.type()) | SOCK_CLOEXEC,
                 static_cast<int>(s.proto())));
  if (!fd && errno == EACCES && s.type() == SOCK_DGRAM &&
      (s.proto() == IPPROTO_ICMP || s.proto() == IPPROTO_ICMPV6))
    fail_sys(
        "cannot create ICMP (ping) socket {}: this machine lets no group of cryo's make ping "
        "sockets (sysctl net.ipv4.ping_group_range)",
        s.id());
  if (!fd) fail_sys("cannot create socket {}", s.id());
  const auto& o = s.opts();
  // Options that decide whether bind succeeds come first. SO_REUSEADDR is on while binding
  // so that connections of the dumped process left in TIME_WAIT do not block the port; it
  // gets its dumped value afterwards.
  set_int(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR", s.id());
  if (o.so_reuseport()) set_int(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT", s.id());
  if (s.family() == AF_INET6)
    set_int(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, s.v6only() ? 1 : 0, "IPV6_V6ONLY", s.id());
  if (s.has_ip_opts() && s.ip_opts().freebind())
    set_int(fd.get(), IPPROTO_IP, IP_FREEBIND, 1, "IP_FREEBIND", s.id());
  if (s.has_ip_opts() && s.ip_opts().has_raw()) {
    const ip_opts_raw_entry& r = s.ip_opts().raw();
    const bool v6 = s.family() == AF_INET6;
    if (r.hdrincl())
      set_int(fd.get(), v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_HDRINCL : IP_HDRINCL, 1,
              "IP_HDRINCL", s.id());
    if (r.nodefrag()) set_int(fd.get(), IPPROTO_IP, IP_NODEFRAG, 1, "IP_NODEFRAG", s.id());
    if (r.icmpv_filter_size() > 0) {
      std::vector<uint32_t> f(r.icmpv_filter().begin(), r.icmpv_filter().end());
      const socklen_t flen = static_cast<socklen_t>(f.size() * sizeof(uint32_t));
      if (::setsockopt(fd.get(), v6 ? IPPROTO_ICMPV6 : SOL_RAW, v6 ? ICMP6_FILTER : ICMP_FILTER,
                       f.data(), flen) < 0)
        fail_sys("socket {}: cannot set its ICMP filter", s.id());
    }
  }
  apply_sk_opts(fd.get(), o, s.id());
  if (s.proto() == IPPROTO_TCP && s.type() == SOCK_STREAM) {
    if (o.tcp_keepcnt())
      set_int(fd.get(), IPPROTO_TCP, TCP_KEEPCNT, static_cast<int>(o.tcp_keepcnt()), "TCP_KEEPCNT",
              s.id());
    if (o.tcp_keepidle())
      set_int(fd.get(), IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(o.tcp_keepidle()),
              "TCP_KEEPIDLE", s.id());
    if (o.tcp_keepintvl())
      set_int(fd.get(), IPPROTO_TCP, TCP_KEEPINTVL, static_cast<int>(o.tcp_keepintvl()),
              "TCP_KEEPINTVL", s.id());
    if (s.cryo_tcp_nodelay()) set_int(fd.get(), IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY", s.id());
    if (s.cryo_tcp_cork()) set_int(fd.get(), IPPROTO_TCP, TCP_CORK, 1, "TCP_CORK", s.id());
  }

  sockaddr_storage src;
  socklen_t len = join(s.family(), s.src_addr(), s.src_port(), &src);
  bool any_addr = true;
  for (uint32_t w : s.src_addr()) any_addr &= w == 0;
  // A connection restored closed is a new socket, not bound; one restored whole takes its
  // address back in repair mode (even while the listener it came from holds the port).
  const bool closed = tcp_connected(s) && !stream;
  if (stream) net::repair_on(fd.get(), s.id());
  if ((s.src_port() || !any_addr) && !closed) {
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&src), len) < 0)
      fail_sys(
          "socket {}: cannot bind to port {} again (another process uses it now, or a "
          "connection of the dumped process lingers in TIME_WAIT for up to 60 s)",
          s.id(), s.src_port());
  }
  set_int(fd.get(), SOL_SOCKET, SO_REUSEADDR, o.reuseaddr() ? 1 : 0, "SO_REUSEADDR", s.id());
  if (stream) {
    sockaddr_storage dst;
    join(s.family(), s.dst_addr(), s.dst_port(), &dst);
    net::restore_tcp_stream(fd.get(), s.id(), static_cast<int>(s.state()), *stream, src, dst, len,
                            o.reuseaddr());
    // The buffer sizes made for the queues were locked: as dumped again.
    set_int(fd.get(), SOL_SOCKET, SO_BUF_LOCK, static_cast<int>(o.so_buf_lock()), "SO_BUF_LOCK",
            s.id());
  } else if (s.state() == image::kSkListen) {
    if (::listen(fd.get(), static_cast<int>(s.backlog() ? s.backlog() : 128)) < 0)
      fail_sys("socket {}: cannot listen on port {}", s.id(), s.src_port());
  } else if (s.state() == image::kSkEstablished && s.type() != SOCK_STREAM) {
    sockaddr_storage dst;
    socklen_t dlen = join(s.family(), s.dst_addr(), s.dst_port(), &dst);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&dst), dlen) < 0)
      fail_sys("socket {}: cannot connect to port {} again", s.id(), s.dst_port());
  }
  if (s.cryo_udp_cork()) set_int(fd.get(), IPPROTO_UDP, UDP_CORK, 1, "UDP_CORK", s.id());
  if (s.has_shutdown() && s.shutdown() != NONE) {
    const int how = s.shutdown() == READ ? SHUT_RD : s.shutdown() == WRITE ? SHUT_WR : SHUT_RDWR;
    // (Not connected, the kernel says ENOTCONN but marks the socket shut down all the same.)
    if (::shutdown(fd.get(), how) < 0 && errno != ENOTCONN)
      fail_sys("socket {}: cannot shut it down again", s.id());
  }
  if (::fcntl(fd.get(), F_SETFL, s.flags() & O_NONBLOCK) < 0)
    fail_sys("cannot set the flags of socket {}", s.id());
  return fd;
}

namespace {

class InetSocketKind : public FileKind {
 public:
  fd_types type() const override { return INETSK; }
  Fd open(const file_entry& f, FileSet& files) override {
    const inet_sk_entry& s = f.isk();
    if (!tcp_connected(s) || files.plan().tcp_close) return open_inet_socket(s);
    net::TcpStream t = net::read_tcp_stream(files.plan().dir, s.ino());
    return open_inet_socket(s, &t);
  }
};

}  // namespace

std::unique_ptr<FileKind> make_inet_socket_kind() {
  return std::make_unique<InetSocketKind>();
}

}  // namespace cryo::restore
