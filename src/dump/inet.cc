#include "dump/inet.h"

#include <arpa/inet.h>
#include <linux/icmp.h>
#include <linux/sock_diag.h>
#include <linux/udp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>

#include "base/error.h"
#include "base/log.h"
#include "dump/event_files.h"
#include "dump/file_kind.h"
#include "dump/files.h"
#include "dump/sockets.h"
#include "image/fdinfo.h"
#include "kernel/sock_diag.h"

namespace cryo::dump {
namespace {

// Address words (network order) and port (host order) of a sockaddr_storage.
void split(const sockaddr_storage& a, google::protobuf::RepeatedField<uint32_t>* words,
           uint32_t* port) {
  if (a.ss_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&a);
    words->Add(in->sin_addr.s_addr);
    *port = ntohs(in->sin_port);
  } else if (a.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a);
    uint32_t w[4];
    std::memcpy(w, &in6->sin6_addr, 16);
    for (uint32_t x : w) words->Add(x);
    *port = ntohs(in6->sin6_port);
  } else {
    *port = 0;
  }
}

std::string show(const sockaddr_storage& a) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (a.ss_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    return fmt::format("{}:{}", buf, ntohs(in->sin_port));
  }
  auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a);
  inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
  return fmt::format("[{}]:{}", buf, ntohs(in6->sin6_port));
}

// The packet filter's view of a connection (an IPv4-mapped IPv6 address as IPv4).
net::Connection connection(const sockaddr_storage& src, const sockaddr_storage& dst) {
  net::Connection c;
  c.family = src.ss_family;
  auto text = [&](const sockaddr_storage& a, std::string* addr, uint16_t* port) {
    char buf[INET6_ADDRSTRLEN] = "?";
    if (a.ss_family == AF_INET) {
      auto* in = reinterpret_cast<const sockaddr_in*>(&a);
      inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
      *port = ntohs(in->sin_port);
    } else {
      auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a);
      if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
        c.family = AF_INET;
        inet_ntop(AF_INET, in6->sin6_addr.s6_addr + 12, buf, sizeof buf);
      } else {
        inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
      }
      *port = ntohs(in6->sin6_port);
    }
    *addr = buf;
  };
  text(src, &c.local, &c.local_port);
  text(dst, &c.remote, &c.remote_port);
  return c;
}

}  // namespace

namespace {

const char* proto_name(int type, int proto) {
  if (type == SOCK_RAW) return "raw";
  switch (proto) {
    case IPPROTO_TCP:
      return "TCP";
    case IPPROTO_UDP:
    case 0:
      return "UDP";
    case IPPROTO_UDPLITE:
      return "UDP-Lite";
    case IPPROTO_ICMP:
      return "ICMP";
    case IPPROTO_ICMPV6:
      return "ICMPv6";
  }
  return "inet";
}

// The shutdown state of a datagram socket: inet_diag shows it for a bound or connected one;
// else poll tells a read shutdown (EPOLLRDHUP) and both (EPOLLHUP).
uint8_t dgram_shutdown(InetDiags& diags, int sk, int family, int proto, uint32_t ino) {
  auto key = std::make_pair(family, proto);
  auto it = diags.find(key);
  if (it == diags.end()) it = diags.emplace(key, kernel::inet_diag_all(family, proto)).first;
  if (auto d = it->second.find(ino); d != it->second.end()) return d->second.shutdown;
  pollfd p{sk, POLLRDHUP, 0};
  if (::poll(&p, 1, 0) != 1) return 0;
  if (p.revents & POLLHUP) return SHUT_RDWR + 1;
  return (p.revents & POLLRDHUP) ? 1 : 0;
}

}  // namespace

void dump_inet_socket(pid_t pid, int fd, int sk, uint32_t ino, uint32_t id, uint32_t flags,
                      file_entry* e, InetDiags& diags, const TcpDump& tcp_opts) {
  const int family = sk_int_opt(sk, SOL_SOCKET, SO_DOMAIN);
  const int type = sk_int_opt(sk, SOL_SOCKET, SO_TYPE);
  const int proto = sk_int_opt(sk, SOL_SOCKET, SO_PROTOCOL);
  sockaddr_storage src{}, dst{};
  socklen_t len = sizeof src;
  ::getsockname(sk, reinterpret_cast<sockaddr*>(&src), &len);
  len = sizeof dst;
  bool connected = ::getpeername(sk, reinterpret_cast<sockaddr*>(&dst), &len) == 0;
  if (!connected) dst.ss_family = static_cast<sa_family_t>(family);
  const std::string where =
      fmt::format("task {} fd {}: {} socket {}", pid, fd, proto_name(type, proto), show(src));

  const bool tcp = type == SOCK_STREAM && proto == IPPROTO_TCP;
  const bool udp =
      type == SOCK_DGRAM && (proto == IPPROTO_UDP || proto == IPPROTO_UDPLITE || proto == 0);
  const bool ping = type == SOCK_DGRAM && (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6);
  const bool raw = type == SOCK_RAW;
  uint32_t state, backlog = 0;
  uint8_t shut = 0;
  bool udp_cork = false;
  if (tcp) {
    tcp_info ti{};
    len = sizeof ti;
    if (::getsockopt(sk, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
      fail_sys("{}: cannot read its TCP state", where);
    state = ti.tcpi_state;
    if (state == image::kSkListen) {
      backlog = ti.tcpi_sacked;                         // for a listener: its backlog limit
      if (ti.tcpi_unacked && !tcp_opts.skip_in_flight)  // for a listener: connections waiting
        fail(
            "{} has {} connection(s) waiting to be accepted, which cryo cannot save: dump with "
            "--skip-in-flight to drop them (their clients see the connection reset)",
            where, ti.tcpi_unacked);
      if (ti.tcpi_unacked)
        log::info("{}: {} connection(s) not accepted yet are dropped (--skip-in-flight)", where,
                  ti.tcpi_unacked);
    } else if (state != image::kSkClose) {
      if (!tcp_opts.session && !tcp_opts.close)
        fail(
            "{} is connected to {} (TCP state {}): dump established TCP connections with "
            "--tcp-established (or with --tcp-close to restore them closed)",
            where, show(dst), net::tcp_state_name(static_cast<int>(state)));
      if (!net::dumpable_tcp_state(static_cast<int>(state)))
        fail(
            "{} is connected to {} in TCP state {}: cryo dumps connections that are "
            "established or half-closed, not in this passing state; dump again in a moment",
            where, show(dst), net::tcp_state_name(static_cast<int>(state)));
      if (tcp_opts.session)
        (*tcp_opts.streams)[ino] =
            tcp_opts.session->dump(sk, static_cast<int>(state), connection(src, dst), where);
    }
  } else if (udp || ping || raw) {
    state = connected ? image::kSkEstablished : image::kSkClose;
    // FIONREAD gives the first datagram's size only, 0 for an empty one: the receive memory
    // in use tells whether any datagram waits.
    int first = 0;
    ::ioctl(sk, FIONREAD, &first);
    uint32_t mem[SK_MEMINFO_VARS] = {};
    socklen_t mlen = sizeof mem;
    if (::getsockopt(sk, SOL_SOCKET, SO_MEMINFO, mem, &mlen) < 0)
      fail_sys("{}: cannot read its receive queue size", where);
    if (first > 0 || mem[SK_MEMINFO_RMEM_ALLOC] > 0)
      fail(
          "{} has datagrams queued (the first of {} bytes; {} bytes of receive buffer in use): "
          "cryo cannot save them (an image has no place for each datagram's sender, and CRIU "
          "drops them); let the process read them and dump again",
          where, first, mem[SK_MEMINFO_RMEM_ALLOC]);
    if (udp) {
      udp_cork = sk_int_opt(sk, IPPROTO_UDP, UDP_CORK) != 0;
      // Data held back by UDP_CORK or MSG_MORE is in no image either (CRIU refuses a corked
      // socket).
      if (mem[SK_MEMINFO_WMEM_ALLOC] > 0)
        fail(
            "{} holds {} bytes not sent yet ({}): cryo cannot save a datagram in the making, "
            "and CRIU refuses a corked UDP socket too; let the process send it (uncork) and "
            "dump again",
            where, mem[SK_MEMINFO_WMEM_ALLOC],
            udp_cork ? "corked with UDP_CORK" : "sent with MSG_MORE");
      shut = dgram_shutdown(diags, sk, family, proto ? proto : IPPROTO_UDP, ino);
    }
  } else {
    fail("task {} fd {}: inet socket of type {} protocol {} is not supported yet", pid, fd, type,
         proto);
  }

  auto* s = e->mutable_isk();
  s->set_id(id);
  s->set_ino(ino);
  s->set_family(static_cast<uint32_t>(family));
  s->set_type(static_cast<uint32_t>(type));
  s->set_proto(static_cast<uint32_t>(proto || type == SOCK_RAW ? proto : IPPROTO_UDP));
  s->set_state(state);
  uint32_t sport = 0, dport = 0;
  split(src, s->mutable_src_addr(), &sport);
  if (connected) split(dst, s->mutable_dst_addr(), &dport);
  s->set_src_port(sport);
  s->set_dst_port(dport);
  s->set_flags(flags);
  s->set_backlog(backlog);
  zero_fown(s->mutable_fown());
  fill_sk_opts(sk, s->mutable_opts());
  if (family == AF_INET6 && sk_int_opt(sk, IPPROTO_IPV6, IPV6_V6ONLY)) s->set_v6only(true);
  if (raw) {
    auto* r = s->mutable_ip_opts()->mutable_raw();
    if (family == AF_INET6) {
      if (sk_int_opt(sk, IPPROTO_IPV6, IPV6_HDRINCL)) r->set_hdrincl(true);
      if (proto == IPPROTO_ICMPV6) {
        icmp6_filter f{};
        len = sizeof f;
        if (::getsockopt(sk, IPPROTO_ICMPV6, ICMP6_FILTER, &f, &len) == 0)
          for (uint32_t w : f.icmp6_filt) r->add_icmpv_filter(w);
      }
    } else {
      if (sk_int_opt(sk, IPPROTO_IP, IP_HDRINCL)) r->set_hdrincl(true);
      if (sk_int_opt(sk, IPPROTO_IP, IP_NODEFRAG)) r->set_nodefrag(true);
      if (proto == IPPROTO_ICMP) {
        uint32_t f = 0;
        len = sizeof f;
        if (::getsockopt(sk, SOL_RAW, ICMP_FILTER, &f, &len) == 0) r->add_icmpv_filter(f);
      }
    }
  } else if (sk_int_opt(sk, IPPROTO_IP, IP_FREEBIND)) {
    s->mutable_ip_opts()->set_freebind(true);
  }
  if (tcp) {
    auto* o = s->mutable_opts();
    o->set_tcp_keepcnt(static_cast<uint32_t>(sk_int_opt(sk, IPPROTO_TCP, TCP_KEEPCNT)));
    o->set_tcp_keepidle(static_cast<uint32_t>(sk_int_opt(sk, IPPROTO_TCP, TCP_KEEPIDLE)));
    o->set_tcp_keepintvl(static_cast<uint32_t>(sk_int_opt(sk, IPPROTO_TCP, TCP_KEEPINTVL)));
    if (sk_int_opt(sk, IPPROTO_TCP, TCP_NODELAY)) s->set_cryo_tcp_nodelay(true);
    if (sk_int_opt(sk, IPPROTO_TCP, TCP_CORK)) s->set_cryo_tcp_cork(true);
  }
  if (udp_cork) s->set_cryo_udp_cork(true);
  if (shut) s->set_shutdown(static_cast<sk_shutdown>(shut & 3));
  log::debug("{}: state {}", where, state);
}

namespace {

class InetSocketKind : public FileKind {
 public:
  fd_types type() const override { return INETSK; }
  bool claims(FdContext& c) override {
    const int domain = c.socket_domain();
    return domain == AF_INET || domain == AF_INET6;
  }
  explicit InetSocketKind(const FileTableOptions& o) {
    tcp_.session = o.tcp;
    tcp_.close = o.tcp_close;
    tcp_.skip_in_flight = o.skip_in_flight;
    tcp_.streams = &streams_;
  }
  void dump(FdContext& c, uint32_t id, file_entry* e) override {
    dump_inet_socket(c.pid, c.fd, c.copy(), c.link_inode(), id, c.flags, e, diags_, tcp_);
  }
  void write(const DumpEnd& end) override {
    for (const auto& [ino, t] : streams_) net::write_tcp_stream(end.dir, ino, t);
  }

 private:
  InetDiags diags_;
  TcpDump tcp_;
  std::map<uint32_t, net::TcpStream> streams_;
};

}  // namespace

std::unique_ptr<FileKind> make_inet_socket_kind(FileTable& t) {
  return std::make_unique<InetSocketKind>(t.options());
}

}  // namespace cryo::dump
