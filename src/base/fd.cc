#include "base/fd.h"

#include <errno.h>
#include <sys/socket.h>

#include <cstring>

namespace cryo {

ssize_t send_fd(int sock, const void* data, size_t len, int fd) {
  iovec iov{const_cast<void*>(data), len};
  msghdr h{};
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    h.msg_control = ctl;
    h.msg_controllen = sizeof ctl;
    cmsghdr* c = CMSG_FIRSTHDR(&h);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  return ::sendmsg(sock, &h, MSG_NOSIGNAL);
}

ssize_t recv_fd(int sock, void* data, size_t len, int* fd) {
  *fd = -1;
  iovec iov{data, len};
  msghdr h{};
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  h.msg_control = ctl;
  h.msg_controllen = sizeof ctl;
  ssize_t n;
  do n = ::recvmsg(sock, &h, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  // Every fd that came is ours to close: a message with more than one (the room for one
  // int is padded to 8 bytes, so two fit) is refused with all of them closed.
  int got = 0;
  for (cmsghdr* c = n >= 0 ? CMSG_FIRSTHDR(&h) : nullptr; c; c = CMSG_NXTHDR(&h, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int one;
      std::memcpy(&one, CMSG_DATA(c) + i * sizeof(int), sizeof one);
      if (got++ == 0)
        *fd = one;
      else
        ::close(one);
    }
  }
  if (n >= 0 && (got > 1 || (h.msg_flags & MSG_CTRUNC))) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
    errno = EPROTO;
    return -1;
  }
  return n;
}

}  // namespace cryo
