// Packet sockets, made again: bound to their interface, version, reserve, flags, memberships,
// rings (the frames they held are not saved) and fanout group, then the socket options.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "base/log.h"
#include "restore/file_kind.h"
#include "restore/files.h"
#include "restore/sockets.h"

namespace cryo::restore {
namespace {

void set_opt(int fd, int name, const void* v, socklen_t len, const char* what, uint32_t id) {
  if (::setsockopt(fd, SOL_PACKET, name, v, len) < 0)
    fail_sys("packet socket {}: cannot set {}", id, what);
}

void set_ring(int fd, int name, const packet_ring& r, const char* what, uint32_t id) {
  tpacket_req3 req{};
  req.tp_block_size = r.block_size();
  req.tp_block_nr = r.block_nr();
  req.tp_frame_size = r.frame_size();
  req.tp_frame_nr = r.frame_nr();
  req.tp_retire_blk_tov = r.retire_tmo();
  req.tp_sizeof_priv = r.sizeof_priv();
  req.tp_feature_req_word = r.features();
  set_opt(fd, name, &req, sizeof req, what, id);
}

Fd open_packet_socket(const packet_sock_entry& p) {
  Fd fd(::socket(AF_PACKET, static_cast<int>(p.type()) | SOCK_CLOEXEC,
                 static_cast<int>(p.protocol())));
  if (!fd) fail_sys("cannot create packet socket {}", p.id());
  const uint32_t id = p.id();
  if (p.type() == SOCK_PACKET) {
    if (p.ifindex()) {
      sockaddr a{};
      a.sa_family = AF_PACKET;
      char name[IF_NAMESIZE] = {};
      if (!::if_indextoname(p.ifindex(), name))
        fail_sys("packet socket {}: no interface {} here", id, p.ifindex());
      std::memcpy(a.sa_data, name, std::min(std::strlen(name), sizeof a.sa_data - 1));
      if (::bind(fd.get(), &a, sizeof a) < 0)
        fail_sys("packet socket {}: cannot bind it to {}", id, name);
    }
  } else {
    sockaddr_ll a{};
    a.sll_family = AF_PACKET;
    a.sll_protocol = static_cast<uint16_t>(p.protocol());
    a.sll_ifindex = static_cast<int>(p.ifindex());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0)
      fail_sys("packet socket {}: cannot bind it to interface {} (is there one here?)", id,
               p.ifindex());
    int v = static_cast<int>(p.version());
    set_opt(fd.get(), PACKET_VERSION, &v, sizeof v, "PACKET_VERSION", id);
    v = static_cast<int>(p.reserve());
    set_opt(fd.get(), PACKET_RESERVE, &v, sizeof v, "PACKET_RESERVE", id);
    v = static_cast<int>(p.timestamp());
    set_opt(fd.get(), PACKET_TIMESTAMP, &v, sizeof v, "PACKET_TIMESTAMP", id);
    v = static_cast<int>(p.copy_thresh());
    set_opt(fd.get(), PACKET_COPY_THRESH, &v, sizeof v, "PACKET_COPY_THRESH", id);
    const int one = 1;
    if (p.aux_data()) set_opt(fd.get(), PACKET_AUXDATA, &one, sizeof one, "PACKET_AUXDATA", id);
    if (p.orig_dev()) set_opt(fd.get(), PACKET_ORIGDEV, &one, sizeof one, "PACKET_ORIGDEV", id);
    if (p.vnet_hdr()) set_opt(fd.get(), PACKET_VNET_HDR, &one, sizeof one, "PACKET_VNET_HDR", id);
    if (p.loss()) set_opt(fd.get(), PACKET_LOSS, &one, sizeof one, "PACKET_LOSS", id);
    for (const packet_mclist& m : p.mclist()) {
      packet_mreq req{};
      req.mr_ifindex = static_cast<int>(m.index());
      req.mr_type = static_cast<unsigned short>(m.type());
      if (m.addr().size() > sizeof req.mr_address)
        fail("packet socket {}: a membership address of {} bytes is too long", id, m.addr().size());
      req.mr_alen = static_cast<unsigned short>(m.addr().size());
      std::memcpy(req.mr_address, m.addr().data(), m.addr().size());
      set_opt(fd.get(), PACKET_ADD_MEMBERSHIP, &req, sizeof req, "PACKET_ADD_MEMBERSHIP", id);
    }
    if (p.has_rx_ring()) set_ring(fd.get(), PACKET_RX_RING, p.rx_ring(), "PACKET_RX_RING", id);
    if (p.has_tx_ring()) set_ring(fd.get(), PACKET_TX_RING, p.tx_ring(), "PACKET_TX_RING", id);
    if (p.has_fanout() && p.fanout() != 0xffffffffu) {
      uint32_t f = p.fanout();
      set_opt(fd.get(), PACKET_FANOUT, &f, sizeof f, "PACKET_FANOUT", id);
    }
  }
  apply_sk_opts(fd.get(), p.opts(), id);
  if (::fcntl(fd.get(), F_SETFL, p.flags() & O_NONBLOCK) < 0)
    fail_sys("cannot set the flags of packet socket {}", id);
  return fd;
}

class PacketSocketKind : public FileKind {
 public:
  fd_types type() const override { return PACKETSK; }
  Fd open(const file_entry& f, FileSet&) override {
    if (!f.has_psk()) fail("image files.img is corrupt: packet socket {} has no psk entry", f.id());
    return open_packet_socket(f.psk());
  }
};

}  // namespace

std::unique_ptr<FileKind> make_packet_socket_kind() {
  return std::make_unique<PacketSocketKind>();
}

}  // namespace cryo::restore
