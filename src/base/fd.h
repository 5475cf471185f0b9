// Move-only owner of a file descriptor.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <utility>

namespace cryo {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// One message of `len` bytes over a unix socket, carrying one fd (SCM_RIGHTS; none if fd < 0).
// Returns what sendmsg returns (errno set). System calls only: usable in a child forked from
// a process with threads.
ssize_t send_fd(int sock, const void* data, size_t len, int fd);
// Receives one message of at most `len` bytes and the fd it carries into *fd (-1: none; made
// close-on-exec), retrying on EINTR. Returns what recvmsg returns; -1 with errno EPROTO, and
// no fd, when the message carried more than one fd. System calls only.
ssize_t recv_fd(int sock, void* data, size_t len, int* fd);

}  // namespace cryo
