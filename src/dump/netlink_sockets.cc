// Netlink sockets: protocol, bound port id, the groups joined and where it is connected, from
// sock_diag, and their socket options. Messages waiting to be read are refused: cryo has no
// place for them (a reply to a request, an event of a group).
#include <linux/netlink.h>
#include <sys/socket.h>

#include "base/error.h"
#include "base/log.h"
#include "dump/event_files.h"
#include "dump/file_kind.h"
#include "dump/sockets.h"
#include "kernel/sock_diag.h"

#include <linux/sock_diag.h>

namespace cryo::dump {
namespace {

class NetlinkSocketKind : public FileKind {
 public:
  fd_types type() const override { return NETLINKSK; }
  bool claims(FdContext& c) override { return c.socket_domain() == AF_NETLINK; }
  void dump(FdContext& c, uint32_t id, file_entry* e) override {
    const uint32_t ino = c.link_inode();
    auto it = diag_.find(ino);
    if (it == diag_.end()) {
      diag_ = kernel::netlink_diag_all();
      it = diag_.find(ino);
    }
    const int sk = c.copy();
    uint32_t mem[SK_MEMINFO_VARS] = {};
    socklen_t mlen = sizeof mem;
    if (::getsockopt(sk, SOL_SOCKET, SO_MEMINFO, mem, &mlen) < 0)
      fail_sys("{}: cannot read its receive queue size", c.where());
    if (mem[SK_MEMINFO_RMEM_ALLOC] > 0)
      fail(
          "{}: netlink socket {} has messages waiting to be read ({} bytes of receive buffer): "
          "cryo cannot save them; let the process read them and dump again",
          c.where(), ino, mem[SK_MEMINFO_RMEM_ALLOC]);
    auto* n = e->mutable_nlsk();
    n->set_id(id);
    n->set_ino(ino);
    n->set_flags(c.flags);
    zero_fown(n->mutable_fown());
    fill_sk_opts(sk, n->mutable_opts());
    if (it != diag_.end()) {
      const kernel::NetlinkDiag& d = it->second;
      n->set_protocol(d.protocol);
      n->set_state(d.state);
      n->set_portid(d.portid);
      for (uint32_t g : d.groups) n->add_groups(g);
      n->set_dst_portid(d.dst_portid);
      n->set_dst_group(d.dst_group);
    } else {
      // sock_diag lists bound netlink sockets only: one never bound has only its protocol.
      n->set_protocol(static_cast<uint32_t>(sk_int_opt(sk, SOL_SOCKET, SO_PROTOCOL)));
      n->set_state(0);
      n->set_portid(0);
      n->set_dst_portid(0);
      n->set_dst_group(0);
    }
    log::debug("{}: netlink socket {} protocol {} port id {}", c.where(), ino, n->protocol(),
               n->portid());
  }

 private:
  std::map<uint32_t, kernel::NetlinkDiag> diag_;
};

}  // namespace

std::unique_ptr<FileKind> make_netlink_socket_kind(FileTable&) {
  return std::make_unique<NetlinkSocketKind>();
}

}  // namespace cryo::dump
