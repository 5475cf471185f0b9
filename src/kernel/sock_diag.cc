#include "kernel/sock_diag.h"

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
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

}  // namespace

std::map<uint32_t, UnixDiag> unix_diag_all() {
  MnlSocket nl{mnl_socket_open(NETLINK_SOCK_DIAG)};
  if (!nl.s) fail_sys("cannot open a sock_diag netlink socket");
  if (mnl_socket_bind(nl.s, 0, MNL_SOCKET_AUTOPID) < 0) fail_sys("cannot bind a netlink socket");
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE * 4);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = 1;
  auto* req = static_cast<unix_diag_req*>(mnl_nlmsg_put_extra_header(nlh, sizeof(unix_diag_req)));
  req->sdiag_family = AF_UNIX;
  req->udiag_states = ~0u;
  req->udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN |
                    UDIAG_SHOW_VFS;  // UNIX_DIAG_SHUTDOWN comes always
  if (mnl_socket_sendto(nl.s, nlh, nlh->nlmsg_len) < 0) fail_sys("cannot query unix sockets");
  std::map<uint32_t, UnixDiag> all;
  unsigned portid = mnl_socket_get_portid(nl.s);
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl.s, buf.data(), buf.size());
    if (n < 0) fail_sys("cannot read the unix socket list");
    int r = mnl_cb_run(buf.data(), static_cast<size_t>(n), 1, portid, on_msg, &all);
    if (r == MNL_CB_STOP) break;
    if (r < 0) fail_sys("bad answer from sock_diag");
  }
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
