// Netlink sockets, made again: bound to their port id with the groups they joined (the first
// 32 by bind, the others by NETLINK_ADD_MEMBERSHIP), connected where they were, then the
// socket options.
#include <fcntl.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include "base/error.h"
#include "base/log.h"
#include "restore/file_kind.h"
#include "restore/files.h"
#include "restore/sockets.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

namespace cryo::restore {
namespace {

Fd open_netlink_socket(const netlink_sk_entry& n) {
  Fd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, static_cast<int>(n.protocol())));
  if (!fd) fail_sys("cannot create netlink socket {} of protocol {}", n.id(), n.protocol());
  apply_sk_opts(fd.get(), n.opts(), n.id());
  if (n.portid()) {
    sockaddr_nl a{};
    a.nl_family = AF_NETLINK;
    a.nl_pid = n.portid();
    a.nl_groups = n.groups_size() > 0 ? n.groups(0) : 0;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0)
      fail_sys("netlink socket {}: cannot bind it to port id {} again (another socket has it now?)",
               n.id(), n.portid());
    for (int w = 1; w < n.groups_size(); w++)
      for (int b = 0; b < 32; b++)
        if (n.groups(w) & (1u << b)) {
          int group = w * 32 + b + 1;
          if (::setsockopt(fd.get(), SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0)
            fail_sys("netlink socket {}: cannot join group {}", n.id(), group);
        }
  }
  if (n.dst_portid() || n.dst_group()) {
    sockaddr_nl d{};
    d.nl_family = AF_NETLINK;
    d.nl_pid = n.dst_portid();
    d.nl_groups = n.dst_group() ? 1u << (n.dst_group() - 1) : 0;
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&d), sizeof d) < 0)
      fail_sys("netlink socket {}: cannot connect it to port id {} group {}", n.id(),
               n.dst_portid(), n.dst_group());
  }
  if (::fcntl(fd.get(), F_SETFL, n.flags() & O_NONBLOCK) < 0)
    fail_sys("cannot set the flags of netlink socket {}", n.id());
  return fd;
}

class NetlinkSocketKind : public FileKind {
 public:
  fd_types type() const override { return NETLINKSK; }
  Fd open(const file_entry& f, FileSet&) override {
    if (!f.has_nlsk())
      fail("image files.img is corrupt: netlink socket {} has no nlsk entry", f.id());
    return open_netlink_socket(f.nlsk());
  }
};

}  // namespace

std::unique_ptr<FileKind> make_netlink_socket_kind() {
  return std::make_unique<NetlinkSocketKind>();
}

}  // namespace cryo::restore
