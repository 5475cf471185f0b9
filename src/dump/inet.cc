#include "dump/inet.h"

#include <arpa/inet.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>

#include "base/error.h"
#include "base/log.h"
#include "dump/event_files.h"
#include "dump/file_kind.h"
#include "dump/sockets.h"
#include "image/fdinfo.h"

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

}  // namespace

void dump_inet_socket(pid_t pid, int fd, int sk, uint32_t ino, uint32_t id, uint32_t flags,
                      file_entry* e) {
  const int family = sk_int_opt(sk, SOL_SOCKET, SO_DOMAIN);
  const int type = sk_int_opt(sk, SOL_SOCKET, SO_TYPE);
  const int proto = sk_int_opt(sk, SOL_SOCKET, SO_PROTOCOL);
  sockaddr_storage src{}, dst{};
  socklen_t len = sizeof src;
  ::getsockname(sk, reinterpret_cast<sockaddr*>(&src), &len);
  len = sizeof dst;
  bool connected = ::getpeername(sk, reinterpret_cast<sockaddr*>(&dst), &len) == 0;
  if (!connected) dst.ss_family = static_cast<sa_family_t>(family);
  const std::string where = fmt::format("task {} fd {}: {} socket {}", pid, fd,
                                        proto == IPPROTO_TCP ? "TCP" : "UDP", show(src));

  uint32_t state, backlog = 0;
  if (type == SOCK_STREAM && proto == IPPROTO_TCP) {
    tcp_info ti{};
    len = sizeof ti;
    if (::getsockopt(sk, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
      fail_sys("{}: cannot read its TCP state", where);
    state = ti.tcpi_state;
    if (state == image::kSkListen) {
      backlog = ti.tcpi_sacked;  // for a listener: its backlog limit
      if (ti.tcpi_unacked)       // for a listener: connections waiting to be accepted
        fail(
            "{} has {} connection(s) waiting to be accepted: restoring them needs "
            "--tcp-established, which is not supported yet",
            where, ti.tcpi_unacked);
    } else if (state != image::kSkClose) {
      fail(
          "{} is connected to {} (TCP state {}): established TCP connections need "
          "--tcp-established, which is not supported yet",
          where, show(dst), state);
    }
  } else if (type == SOCK_DGRAM && (proto == IPPROTO_UDP || proto == 0)) {
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
  } else {
    fail("task {} fd {}: inet socket of type {} protocol {} is not supported yet", pid, fd, type,
         proto);
  }

  auto* s = e->mutable_isk();
  s->set_id(id);
  s->set_ino(ino);
  s->set_family(static_cast<uint32_t>(family));
  s->set_type(static_cast<uint32_t>(type));
  s->set_proto(static_cast<uint32_t>(proto ? proto : IPPROTO_UDP));
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
  if (sk_int_opt(sk, IPPROTO_IP, IP_FREEBIND)) s->mutable_ip_opts()->set_freebind(true);
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
  void dump(FdContext& c, uint32_t id, file_entry* e) override {
    dump_inet_socket(c.pid, c.fd, c.copy(), c.link_inode(), id, c.flags, e);
  }
};

}  // namespace

std::unique_ptr<FileKind> make_inet_socket_kind(FileTable&) {
  return std::make_unique<InetSocketKind>();
}

}  // namespace cryo::dump
