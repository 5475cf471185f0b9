#include "kernel/sock_diag.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/netlink_diag.h>
#include <linux/packet_diag.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "base/error.h"
#include "base/strings.h"

namespace cryo::kernel {
namespace {

struct MnlSocket {
  mnl_socket* s;
  ~MnlSocket() {
    if (s) mnl_socket_close(s);
  }
};

int parse_attr(const nlattr* a, void* data) {
  auto* d = static_cast<UnixDiag*>(data);
  switch (mnl_attr_get_type(a)) {
    case UNIX_DIAG_NAME:
      d->name.assign(static_cast<const char*>(mnl_attr_get_payload(a)),
                     mnl_attr_get_payload_len(a));
      break;
    case UNIX_DIAG_PEER:
      d->peer = mnl_attr_get_u32(a);
      break;
    case UNIX_DIAG_ICONS: {
      size_t n = mnl_attr_get_payload_len(a) / 4;
      auto* v = static_cast<const uint32_t*>(mnl_attr_get_payload(a));
      d->icons.assign(v, v + n);
      break;
    }
    case UNIX_DIAG_RQLEN: {
      auto* q = static_cast<const unix_diag_rqlen*>(mnl_attr_get_payload(a));
      d->rqueue = q->udiag_rqueue;
      d->wqueue = q->udiag_wqueue;
      break;
    }
    case UNIX_DIAG_VFS: {
      auto* v = static_cast<const unix_diag_vfs*>(mnl_attr_get_payload(a));
      d->vfs_dev = v->udiag_vfs_dev;
      d->vfs_ino = v->udiag_vfs_ino;
      break;
    }
    case UNIX_DIAG_SHUTDOWN:
      d->shutdown = mnl_attr_get_u8(a);
      break;
  }
  return MNL_CB_OK;
}

int on_msg(const nlmsghdr* nlh, void* data) {
  auto* all = static_cast<std::map<uint32_t, UnixDiag>*>(data);
  auto* m = static_cast<const unix_diag_msg*>(mnl_nlmsg_get_payload(nlh));
  UnixDiag d;
  d.ino = m->udiag_ino;
  d.type = m->udiag_type;
  d.state = m->udiag_state;
  mnl_attr_parse(nlh, sizeof(*m), parse_attr, &d);
  (*all)[d.ino] = std::move(d);
  return MNL_CB_OK;
}

// Sends one sock_diag dump request and hands every answer to `cb`.
void diag_dump(const void* req, size_t len, mnl_cb_t cb, void* data, const char* what) {
  MnlSocket nl{mnl_socket_open(NETLINK_SOCK_DIAG)};
  if (!nl.s) fail_sys("cannot open a sock_diag netlink socket");
  if (mnl_socket_bind(nl.s, 0, MNL_SOCKET_AUTOPID) < 0) fail_sys("cannot bind a netlink socket");
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE * 4);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = 1;
  std::memcpy(mnl_nlmsg_put_extra_header(nlh, len), req, len);
  if (mnl_socket_sendto(nl.s, nlh, nlh->nlmsg_len) < 0) fail_sys("cannot query {}", what);
  unsigned portid = mnl_socket_get_portid(nl.s);
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl.s, buf.data(), buf.size());
    if (n < 0) fail_sys("cannot read the list of {}", what);
    int r = mnl_cb_run(buf.data(), static_cast<size_t>(n), 1, portid, cb, data);
    if (r == MNL_CB_STOP) break;
    if (r < 0) fail_sys("bad answer from sock_diag about {}", what);
  }
}

int on_inet(const nlmsghdr* nlh, void* data) {
  auto* all = static_cast<std::map<uint32_t, InetDiag>*>(data);
  auto* m = static_cast<const inet_diag_msg*>(mnl_nlmsg_get_payload(nlh));
  InetDiag d;
  d.ino = m->idiag_inode;
  d.state = m->idiag_state;
  d.rqueue = m->idiag_rqueue;
  d.wqueue = m->idiag_wqueue;
  mnl_attr_parse(
      nlh, sizeof(*m),
      [](const nlattr* a, void* p) {
        if (mnl_attr_get_type(a) == INET_DIAG_SHUTDOWN)
          static_cast<InetDiag*>(p)->shutdown = mnl_attr_get_u8(a);
        return MNL_CB_OK;
      },
      &d);
  (*all)[d.ino] = d;
  return MNL_CB_OK;
}

int on_packet(const nlmsghdr* nlh, void* data) {
  auto* all = static_cast<std::map<uint32_t, PacketDiag>*>(data);
  auto* m = static_cast<const packet_diag_msg*>(mnl_nlmsg_get_payload(nlh));
  PacketDiag d;
  d.ino = m->pdiag_ino;
  d.type = m->pdiag_type;
  d.proto = m->pdiag_num;  // (the kernel gives it in host order)
  mnl_attr_parse(
      nlh, sizeof(*m),
      [](const nlattr* a, void* p) {
        auto* d = static_cast<PacketDiag*>(p);
        const void* v = mnl_attr_get_payload(a);
        const size_t len = mnl_attr_get_payload_len(a);
        switch (mnl_attr_get_type(a)) {
          case PACKET_DIAG_INFO:
            if (len >= sizeof(packet_diag_info)) std::memcpy(&d->info, v, sizeof d->info);
            d->has_info = true;
            break;
          case PACKET_DIAG_MCLIST: {
            auto* ml = static_cast<const packet_diag_mclist*>(v);
            d->mclist.assign(ml, ml + len / sizeof(packet_diag_mclist));
            break;
          }
          case PACKET_DIAG_RX_RING:
            if (len >= sizeof(packet_diag_ring)) std::memcpy(&d->rx_ring, v, sizeof d->rx_ring);
            d->has_rx_ring = true;
            break;
          case PACKET_DIAG_TX_RING:
            if (len >= sizeof(packet_diag_ring)) std::memcpy(&d->tx_ring, v, sizeof d->tx_ring);
            d->has_tx_ring = true;
            break;
          case PACKET_DIAG_FANOUT:
            d->fanout = mnl_attr_get_u32(a);
            d->has_fanout = true;
            break;
        }
        return MNL_CB_OK;
      },
      &d);
  (*all)[d.ino] = std::move(d);
  return MNL_CB_OK;
}

int on_netlink(const nlmsghdr* nlh, void* data) {
  auto* all = static_cast<std::map<uint32_t, NetlinkDiag>*>(data);
  auto* m = static_cast<const netlink_diag_msg*>(mnl_nlmsg_get_payload(nlh));
  NetlinkDiag d;
  d.ino = m->ndiag_ino;
  d.protocol = m->ndiag_protocol;
  d.state = m->ndiag_state;
  d.portid = m->ndiag_portid;
  d.dst_portid = m->ndiag_dst_portid;
  d.dst_group = m->ndiag_dst_group;
  mnl_attr_parse(
      nlh, sizeof(*m),
      [](const nlattr* a, void* p) {
        if (mnl_attr_get_type(a) == NETLINK_DIAG_GROUPS) {
          auto* d = static_cast<NetlinkDiag*>(p);
          auto* g = static_cast<const uint32_t*>(mnl_attr_get_payload(a));
          d->groups.assign(g, g + mnl_attr_get_payload_len(a) / 4);
        }
        return MNL_CB_OK;
      },
      &d);
  (*all)[d.ino] = std::move(d);
  return MNL_CB_OK;
}

}  // namespace

std::map<uint32_t, UnixDiag> unix_diag_all() {
  unix_diag_req req{};
  req.sdiag_family = AF_UNIX;
  req.udiag_states = ~0u;
  req.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN |
                   UDIAG_SHOW_VFS;  // UNIX_DIAG_SHUTDOWN comes always
  std::map<uint32_t, UnixDiag> all;
  diag_dump(&req, sizeof req, on_msg, &all, "unix sockets");
  return all;
}

std::map<uint32_t, InetDiag> inet_diag_all(int family, int protocol) {
  inet_diag_req_v2 req{};
  req.sdiag_family = static_cast<uint8_t>(family);
  req.sdiag_protocol = static_cast<uint8_t>(protocol);
  req.idiag_states = ~0u;
  std::map<uint32_t, InetDiag> all;
  diag_dump(&req, sizeof req, on_inet, &all, "inet sockets");
  return all;
}

std::map<uint32_t, PacketDiag> packet_diag_all() {
  packet_diag_req req{};
  req.sdiag_family = AF_PACKET;
  req.pdiag_show =
      PACKET_SHOW_INFO | PACKET_SHOW_MCLIST | PACKET_SHOW_RING_CFG | PACKET_SHOW_FANOUT;
  std::map<uint32_t, PacketDiag> all;
  diag_dump(&req, sizeof req, on_packet, &all, "packet sockets");
  return all;
}

std::map<uint32_t, NetlinkDiag> netlink_diag_all() {
  netlink_diag_req req{};
  req.sdiag_family = AF_NETLINK;
  req.sdiag_protocol = NDIAG_PROTO_ALL;
  req.ndiag_show = NDIAG_SHOW_GROUPS;
  std::map<uint32_t, NetlinkDiag> all;
  diag_dump(&req, sizeof req, on_netlink, &all, "netlink sockets");
  return all;
}

bool same_kernel_dev(uint32_t kdev, uint64_t st_dev) {
  return (kdev >> 20) == major(st_dev) && (kdev & 0xfffff) == minor(st_dev);
}

std::string unix_name_printable(const std::string& name) {
  if (name.empty()) return "unnamed";
  // (Names come from images too: their control characters are escaped.)
  if (name[0] == '\0') {
    std::string r = "@";
    r += printable(std::string_view(name).substr(1));
    return r;
  }
  return printable(name.c_str());
}

}  // namespace cryo::kernel
