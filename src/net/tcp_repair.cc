#include "net/tcp_repair.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "base/deadline.h"
#include "base/error.h"
#include "base/fault.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "image/image.h"

namespace cryo::net {
namespace {

// States with our FIN in the send sequence, and with the peer's FIN in the receive one.
bool fin_sent(int st) {
  return st == TCP_FIN_WAIT1 || st == TCP_FIN_WAIT2 || st == TCP_LAST_ACK || st == TCP_CLOSING;
}
bool fin_received(int st) {
  return st == TCP_CLOSE_WAIT || st == TCP_LAST_ACK || st == TCP_CLOSING;
}

int get_int(int sk, int name, const std::string& where, const char* what) {
  int v = 0;
  socklen_t len = sizeof v;
  if (::getsockopt(sk, SOL_TCP, name, &v, &len) < 0) fail_sys("{}: cannot read {}", where, what);
  return v;
}

void set_opt(int sk, int level, int name, const void* v, socklen_t len, uint32_t id,
             const char* what) {
  if (::setsockopt(sk, level, name, v, len) < 0) fail_sys("socket {}: cannot set {}", id, what);
}
void set_int(int sk, int name, int v, uint32_t id, const char* what) {
  set_opt(sk, SOL_TCP, name, &v, sizeof v, id, what);
}

int queue_len(int sk, unsigned long req, const std::string& where, const char* what) {
  int v = 0;
  if (::ioctl(sk, req, &v) < 0) fail_sys("{}: cannot read the size of its {}", where, what);
  return v;
}

std::string peek_queue(int sk, int queue, uint32_t len, const std::string& where,
                       const char* what) {
  std::string data(len, '\0');
  if (len == 0) return data;
  if (::setsockopt(sk, SOL_TCP, TCP_REPAIR_QUEUE, &queue, sizeof queue) < 0)
    fail_sys("{}: cannot select its {} (TCP_REPAIR_QUEUE)", where, what);
  ssize_t n = ::recv(sk, data.data(), len, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) fail_sys("{}: cannot read its {}", where, what);
  if (static_cast<uint32_t>(n) != len)
    fail("{}: its {} holds {} bytes, but {} could be read", where, what, len, n);
  return data;
}

uint32_t queue_seq(int sk, int queue, const std::string& where, const char* what) {
  if (::setsockopt(sk, SOL_TCP, TCP_REPAIR_QUEUE, &queue, sizeof queue) < 0)
    fail_sys("{}: cannot select its {} (TCP_REPAIR_QUEUE)", where, what);
  return static_cast<uint32_t>(get_int(sk, TCP_QUEUE_SEQ, where, "a queue's sequence number"));
}

// Leaving repair mode clears SO_REUSEADDR: it is put back to `reuse`.
void repair_off(int sk, int reuse) {
  int off = TCP_REPAIR_OFF;
  if (::setsockopt(sk, SOL_TCP, TCP_REPAIR, &off, sizeof off) < 0)
    log::warn("cannot take a TCP socket out of repair mode: {}", std::strerror(errno));
  if (reuse) ::setsockopt(sk, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse);
}

}  // namespace

std::string tcp_stream_image(uint32_t ino) {
  return fmt::format("tcp-stream-{:x}.img", ino);
}

void write_tcp_stream(const std::string& dir, uint32_t ino, const TcpStream& t) {
  image::Writer w(dir, tcp_stream_image(ino), image::magic::kTcpStream);
  w.put(t.e);
  w.put_raw(t.inq.data(), t.inq.size());
  w.put_raw(t.outq.data(), t.outq.size());
  w.close();
}

TcpStream read_tcp_stream(const std::string& dir, uint32_t ino) {
  TcpStream t;
  image::Reader r(dir, tcp_stream_image(ino), image::magic::kTcpStream);
  if (!r.next(t.e)) fail("image {} has no entry", r.name());
  t.inq = std::string(r.take_raw(t.e.inq_len()));
  t.outq = std::string(r.take_raw(t.e.outq_len()));
  if (t.e.unsq_len() > t.e.outq_len())
    fail("image {}: {} bytes not sent of a send queue of {}", r.name(), t.e.unsq_len(),
         t.e.outq_len());
  if (!r.at_end()) fail("image {} has {} bytes after its entry", r.name(), r.remaining());
  return t;
}

bool dumpable_tcp_state(int st) {
  return st == TCP_ESTABLISHED || fin_sent(st) || fin_received(st);
}

const char* tcp_state_name(int st) {
  static const char* const kNames[] = {
      "?",     "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",   "TIME_WAIT",
      "CLOSE", "CLOSE_WAIT",  "LAST_ACK", "LISTEN",   "CLOSING",   "NEW_SYN_RECV"};
  return st >= 0 && st < static_cast<int>(std::size(kNames)) ? kNames[st] : "?";
}

// --- dump

TcpStream RepairSession::dump(int sk, int st, const Connection& c, const std::string& where) {
  lock_.add({c});
  Fd mine(::fcntl(sk, F_DUPFD_CLOEXEC, 3));
  if (!mine) fail_sys("{}: cannot keep a copy of it", where);
  int reuse = 0;
  socklen_t rlen = sizeof reuse;
  ::getsockopt(sk, SOL_SOCKET, SO_REUSEADDR, &reuse, &rlen);
  int on = TCP_REPAIR_ON;
  if (::setsockopt(mine.get(), SOL_TCP, TCP_REPAIR, &on, sizeof on) < 0)
    fail_sys("{}: cannot put it in repair mode (TCP_REPAIR needs CAP_NET_ADMIN)", where);
  socks_.push_back(std::move(mine));
  reuse_.push_back(reuse);
  // For the tests of a stop signal while connections are locked and in repair mode.
  if (fault_wanted("tcp-locked-stall"))
    for (int i = 0; i < 2000; i++) {
      interrupt_point();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  sk = socks_.back().get();

  TcpStream t;
  tcp_stream_entry& e = t.e;
  uint32_t inq = static_cast<uint32_t>(queue_len(sk, SIOCINQ, where, "receive queue"));
  uint32_t outq = static_cast<uint32_t>(queue_len(sk, SIOCOUTQ, where, "send queue"));
  uint32_t unsq = static_cast<uint32_t>(queue_len(sk, SIOCOUTQNSD, where, "send queue"));
  uint32_t inq_seq = queue_seq(sk, TCP_RECV_QUEUE, where, "receive queue");
  uint32_t outq_seq = queue_seq(sk, TCP_SEND_QUEUE, where, "send queue");
  // A FIN takes a sequence number but no byte of a queue: the image holds the sequence
  // before it (as CRIU's), and the restore sends or receives the FIN again.
  if (fin_sent(st)) {
    outq_seq--;
    if (outq) outq--;  // the FIN is not acknowledged yet
    if (unsq) unsq--;  // nor sent
  }
  if (fin_received(st)) inq_seq--;  // (SIOCINQ counts no FIN)
  e.set_inq_len(inq);
  e.set_inq_seq(inq_seq);
  e.set_outq_len(outq);
  e.set_outq_seq(outq_seq);
  e.set_unsq_len(unsq);

  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (::getsockopt(sk, SOL_TCP, TCP_INFO, &ti, &len) < 0)
    fail_sys("{}: cannot read its TCP options", where);
  e.set_opt_mask(ti.tcpi_options);
  e.set_snd_wscale(ti.tcpi_snd_wscale);
  e.set_rcv_wscale(ti.tcpi_rcv_wscale);
  e.set_mss_clamp(static_cast<uint32_t>(get_int(sk, TCP_MAXSEG, where, "its MSS")));
  if (ti.tcpi_options & TCPI_OPT_TIMESTAMPS)
    e.set_timestamp(static_cast<uint32_t>(get_int(sk, TCP_TIMESTAMP, where, "its timestamp")));
  tcp_repair_window w{};
  len = sizeof w;
  if (::getsockopt(sk, SOL_TCP, TCP_REPAIR_WINDOW, &w, &len) < 0)
    fail_sys("{}: cannot read its window (TCP_REPAIR_WINDOW)", where);
  e.set_snd_wl1(w.snd_wl1);
  e.set_snd_wnd(w.snd_wnd);
  e.set_max_window(w.max_window);
  e.set_rcv_wnd(w.rcv_wnd);
  e.set_rcv_wup(w.rcv_wup);
  e.set_nodelay(get_int(sk, TCP_NODELAY, where, "TCP_NODELAY") != 0);
  e.set_cork(get_int(sk, TCP_CORK, where, "TCP_CORK") != 0);

  t.inq = peek_queue(sk, TCP_RECV_QUEUE, inq, where, "receive queue");
  t.outq = peek_queue(sk, TCP_SEND_QUEUE, outq, where, "send queue");
  log::debug("{}: {} {}, in seq {} len {}, out seq {} len {} ({} not sent), options {:#x}", where,
             c.show(), tcp_state_name(st), inq_seq, inq, outq_seq, outq, unsq, ti.tcpi_options);
  return t;
}

void RepairSession::release() {
  for (size_t i = 0; i < socks_.size(); i++) repair_off(socks_[i].get(), reuse_[i]);
  socks_.clear();
  lock_.lift();
}

void RepairSession::commit(bool killed) {
  done_ = true;
  if (!killed) return release();
  if (!socks_.empty()) lock_.keep();
}

RepairSession::~RepairSession() {
  if (!done_) release();
}

// --- restore

namespace {

void send_all(int sk, const char* data, size_t len, uint32_t id, const char* what) {
  size_t chunk = 1 << 16;
  while (len > 0) {
    ssize_t n = ::send(sk, data, std::min(len, chunk), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == ENOMEM && chunk > 4096) {
      chunk /= 2;
      continue;
    }
    if (n < 0) fail_sys("socket {}: cannot put back its {} ({} bytes left)", id, what, len);
    data += n;
    len -= static_cast<size_t>(n);
  }
}

void select_queue(int sk, int queue, uint32_t id) {
  set_int(sk, TCP_REPAIR_QUEUE, queue, id, "TCP_REPAIR_QUEUE");
}

// Room for `bytes` of queued data, whatever the buffer sizes (sysctl maximums included).
void make_room(int sk, int name, size_t bytes, uint32_t id) {
  int cur = 0;
  socklen_t len = sizeof cur;
  ::getsockopt(sk, SOL_SOCKET, name == SO_SNDBUFFORCE ? SO_SNDBUF : SO_RCVBUF, &cur, &len);
  const size_t want = 2 * bytes + (1 << 16);
  if (static_cast<size_t>(cur) >= want) return;
  int half = static_cast<int>(std::min<size_t>(want / 2 + 1, 1u << 30));
  set_opt(sk, SOL_SOCKET, name, &half, sizeof half, id, "a buffer size for the queues");
}

uint16_t csum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}
uint32_t csum_add(uint32_t sum, const void* p, size_t len) {
  auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(b[i] << 8 | b[i + 1]);
  if (len & 1) sum += static_cast<uint32_t>(b[len - 1] << 8);
  return sum;
}

// Sends the socket at `local` a segment from its peer at `remote` (a FIN, or the ACK of our
// FIN), as the peer sent it before the dump. Marked to pass the network lock.
// An IPv4-mapped IPv6 address as the IPv4 one its packets carry.
sockaddr_storage unmapped(const sockaddr_storage& a) {
  auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a);
  if (a.ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) return a;
  sockaddr_storage r{};
  auto* in = reinterpret_cast<sockaddr_in*>(&r);
  in->sin_family = AF_INET;
  in->sin_port = in6->sin6_port;
  std::memcpy(&in->sin_addr, in6->sin6_addr.s6_addr + 12, 4);
  return r;
}

void send_as_peer(const sockaddr_storage& local_addr, const sockaddr_storage& remote_addr,
                  uint32_t seq, uint32_t ack, uint16_t window, uint8_t flags, uint32_t id) {
  const sockaddr_storage local = unmapped(local_addr), remote = unmapped(remote_addr);
  const bool v6 = local.ss_family == AF_INET6;
  Fd raw(::socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_TCP));
  if (!raw) fail_sys("socket {}: cannot make a raw socket to send it its peer's FIN", id);
  const int mark = static_cast<int>(kLockMark);
  set_opt(raw.get(), SOL_SOCKET, SO_MARK, &mark, sizeof mark, id, "SO_MARK on a raw socket");
  tcphdr th{};
  th.th_sport = v6 ? reinterpret_cast<const sockaddr_in6*>(&remote)->sin6_port
                   : reinterpret_cast<const sockaddr_in*>(&remote)->sin_port;
  th.th_dport = v6 ? reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port
                   : reinterpret_cast<const sockaddr_in*>(&local)->sin_port;
  th.th_seq = htonl(seq);
  th.th_ack = htonl(ack);
  th.th_off = 5;
  th.th_flags = flags;
  th.th_win = htons(window);
  ssize_t n;
  if (v6) {
    int one = 1, off = 16;  // the kernel computes the checksum at offset 16
    set_opt(raw.get(), IPPROTO_IPV6, IPV6_CHECKSUM, &off, sizeof off, id, "IPV6_CHECKSUM");
    ::setsockopt(raw.get(), IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof one);
    ::setsockopt(raw.get(), IPPROTO_IPV6, IPV6_TRANSPARENT, &one, sizeof one);
    sockaddr_in6 from = *reinterpret_cast<const sockaddr_in6*>(&remote);
    from.sin6_port = 0;
    if (::bind(raw.get(), reinterpret_cast<sockaddr*>(&from), sizeof from) < 0)
      fail_sys("socket {}: cannot send as its peer's address", id);
    sockaddr_in6 to = *reinterpret_cast<const sockaddr_in6*>(&local);
    to.sin6_port = 0;
    n = ::sendto(raw.get(), &th, sizeof th, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  } else {
    int one = 1;
    set_opt(raw.get(), IPPROTO_IP, IP_HDRINCL, &one, sizeof one, id, "IP_HDRINCL");
    struct {
      iphdr ip;
      tcphdr tcp;
    } pkt{};
    const auto& from = *reinterpret_cast<const sockaddr_in*>(&remote);
    const auto& to = *reinterpret_cast<const sockaddr_in*>(&local);
    pkt.ip.version = 4;
    pkt.ip.ihl = 5;
    pkt.ip.tot_len = htons(sizeof pkt);
    pkt.ip.ttl = 64;
    pkt.ip.protocol = IPPROTO_TCP;
    pkt.ip.saddr = from.sin_addr.s_addr;
    pkt.ip.daddr = to.sin_addr.s_addr;
    uint8_t pseudo[12];
    std::memcpy(pseudo, &pkt.ip.saddr, 4);
    std::memcpy(pseudo + 4, &pkt.ip.daddr, 4);
    pseudo[8] = 0;
    pseudo[9] = IPPROTO_TCP;
    pseudo[10] = 0;
    pseudo[11] = sizeof(tcphdr);
    th.th_sum = htons(csum_fold(csum_add(csum_add(0, pseudo, 12), &th, sizeof th)));
    pkt.tcp = th;
    sockaddr_in dst = to;
    dst.sin_port = 0;
    n = ::sendto(raw.get(), &pkt, sizeof pkt, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
  }
  if (n < 0) fail_sys("socket {}: cannot send it its peer's segment", id);
}

// The kernel takes the segment in asynchronously (softirq): wait, bounded, for its effect.
void wait_state(int sk, int want, uint32_t id) {
  Deadline d(std::chrono::seconds(2));
  tcp_info ti{};
  for (;;) {
    socklen_t len = sizeof ti;
    if (::getsockopt(sk, SOL_TCP, TCP_INFO, &ti, &len) < 0)
      fail_sys("socket {}: cannot read its state", id);
    if (ti.tcpi_state == want) return;
    if (d.expired())
      fail("socket {}: it is {} and not {} after its peer's FIN or ACK was sent to it again", id,
           tcp_state_name(ti.tcpi_state), tcp_state_name(want));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace

void repair_on(int sk, uint32_t id) {
  int on = TCP_REPAIR_ON;
  if (::setsockopt(sk, SOL_TCP, TCP_REPAIR, &on, sizeof on) < 0)
    fail_sys("socket {}: cannot put it in repair mode (TCP_REPAIR needs CAP_NET_ADMIN)", id);
}

void restore_tcp_stream(int sk, uint32_t id, int st, const TcpStream& t,
                        const sockaddr_storage& local, const sockaddr_storage& remote,
                        socklen_t len, bool reuse) {
  const tcp_stream_entry& e = t.e;
  select_queue(sk, TCP_SEND_QUEUE, id);
  set_int(sk, TCP_QUEUE_SEQ, static_cast<int>(e.outq_seq() - e.outq_len()), id, "TCP_QUEUE_SEQ");
  select_queue(sk, TCP_RECV_QUEUE, id);
  set_int(sk, TCP_QUEUE_SEQ, static_cast<int>(e.inq_seq() - e.inq_len()), id, "TCP_QUEUE_SEQ");
  // The segment size is computed once, at connect, from the MSS limit known then: the
  // dumped one, given as the user's limit for that moment (else it would stay the default
  // 536 bytes for the connection's life). The kernel takes at most 32767 there, which
  // only loopback's 64 KiB MTU exceeds.
  const int mss = std::min(static_cast<int>(e.mss_clamp()), 32767);
  if (mss >= 88) set_int(sk, TCP_MAXSEG, mss, id, "TCP_MAXSEG");
  if (::connect(sk, reinterpret_cast<const sockaddr*>(&remote), len) < 0)
    fail_sys("socket {}: cannot connect it again in repair mode", id);
  set_int(sk, TCP_MAXSEG, 0, id, "TCP_MAXSEG");

  std::vector<tcp_repair_opt> opts;
  opts.push_back({TCPOPT_MAXSEG, e.mss_clamp()});
  if (e.opt_mask() & TCPI_OPT_WSCALE)
    opts.push_back({TCPOPT_WINDOW, e.snd_wscale() | (e.rcv_wscale() << 16)});
  if (e.opt_mask() & TCPI_OPT_SACK) opts.push_back({TCPOPT_SACK_PERMITTED, 0});
  if (e.opt_mask() & TCPI_OPT_TIMESTAMPS) opts.push_back({TCPOPT_TIMESTAMP, 0});
  set_opt(sk, SOL_TCP, TCP_REPAIR_OPTIONS, opts.data(),
          static_cast<socklen_t>(opts.size() * sizeof opts[0]), id, "TCP_REPAIR_OPTIONS");
  if (e.opt_mask() & TCPI_OPT_TIMESTAMPS)
    set_int(sk, TCP_TIMESTAMP, static_cast<int>(e.timestamp()), id, "TCP_TIMESTAMP");

  // The queues: received data back into the receive queue; the sent part of the send queue
  // as sent and unacknowledged (retransmitted as needed), the rest sent after repair mode.
  make_room(sk, SO_RCVBUFFORCE, t.inq.size(), id);
  make_room(sk, SO_SNDBUFFORCE, t.outq.size(), id);
  select_queue(sk, TCP_RECV_QUEUE, id);
  send_all(sk, t.inq.data(), t.inq.size(), id, "receive queue");
  select_queue(sk, TCP_SEND_QUEUE, id);
  const size_t sent = e.outq_len() - e.unsq_len();
  send_all(sk, t.outq.data(), sent, id, "send queue");

  // Half-closed: the peer's FIN comes again from a raw socket, ours is queued as sent
  // (or, behind data not sent yet, sent after it).
  const uint32_t snd_una = e.outq_seq() - e.outq_len();
  const uint16_t win = static_cast<uint16_t>(std::min<uint32_t>(
      0xffff, e.snd_wnd() >> ((e.opt_mask() & TCPI_OPT_WSCALE) ? e.snd_wscale() : 0)));
  const bool our_fin_queued = fin_sent(st) && e.unsq_len() == 0;
  if (fin_received(st) && st != TCP_CLOSING) {
    send_as_peer(local, remote, e.inq_seq(), snd_una, win, TH_FIN | TH_ACK, id);
    wait_state(sk, TCP_CLOSE_WAIT, id);
  }
  if (our_fin_queued) {
    if (::shutdown(sk, SHUT_WR) < 0) fail_sys("socket {}: cannot send its FIN again", id);
    if (st == TCP_FIN_WAIT2) {
      send_as_peer(local, remote, e.inq_seq(), e.outq_seq() + 1, win, TH_ACK, id);
      wait_state(sk, TCP_FIN_WAIT2, id);
    } else if (st == TCP_CLOSING) {
      send_as_peer(local, remote, e.inq_seq(), snd_una, win, TH_FIN | TH_ACK, id);
      wait_state(sk, TCP_CLOSING, id);
    }
  }
  // Last: the window values may count the peer's FIN (the kernel checks them against the
  // receive sequence).
  if (e.has_snd_wnd()) {
    tcp_repair_window w{e.snd_wl1(), e.snd_wnd(), e.max_window(), e.rcv_wnd(), e.rcv_wup()};
    set_opt(sk, SOL_TCP, TCP_REPAIR_WINDOW, &w, sizeof w, id, "TCP_REPAIR_WINDOW");
  }
  repair_off(sk, reuse);
  send_all(sk, t.outq.data() + sent, e.unsq_len(), id, "data not sent yet");
  if (fin_sent(st) && !our_fin_queued && ::shutdown(sk, SHUT_WR) < 0)
    fail_sys("socket {}: cannot send its FIN again", id);
  log::debug("socket {}: TCP connection restored ({}, in seq {} len {}, out seq {} len {})", id,
             tcp_state_name(st), e.inq_seq(), e.inq_len(), e.outq_seq(), e.outq_len());
}

}  // namespace cryo::net
