#include "restore/sockets.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "base/error.h"
#include "base/log.h"
#include "base/strings.h"
#include "image/fdinfo.h"
#include "image/image.h"
#include "kernel/sock_diag.h"
#include "proc/proc.h"
#include "restore/file_kind.h"
#include "restore/files.h"
#include "restore/validate.h"

namespace cryo::restore {
namespace {

sockaddr_un address(const std::string& name, socklen_t* len) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (name.size() > sizeof a.sun_path)
    fail("unix socket name too long: {}", kernel::unix_name_printable(name));
  std::memcpy(a.sun_path, name.data(), name.size());
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  return a;
}

void bind_to(int fd, const std::string& name, uint32_t id) {
  socklen_t len;
  sockaddr_un a = address(name, &len);
  if (name[0] != '\0') {
    // The dumped process's socket file is still there: a socket no one is bound to any more.
    // One a live socket is bound to now belongs to someone else: never take it away.
    std::string path = name.c_str();
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      for (const auto& [ino, d] : kernel::unix_diag_all())
        if (!d.name.empty() && d.name[0] != '\0' && d.name.c_str() == path)
          fail(
              "cannot bind unix socket {} to {}: a running socket is bound there now ({}): stop "
              "it, or restore where the path is free",
              id, printable(path), proc::socket_holder(ino));
      ::unlink(path.c_str());
    }
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), len) < 0)
    fail_sys("cannot bind unix socket {} to {}", id, kernel::unix_name_printable(name));
}

void connect_to(int fd, const std::string& name, uint32_t id, const char* hint = "") {
  socklen_t len;
  sockaddr_un a = address(name, &len);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), len) < 0)
    fail_sys("cannot connect unix socket {} to {}{}", id, kernel::unix_name_printable(name), hint);
}

}  // namespace

void apply_sk_opts(int fd, const sk_opts_entry& o, uint32_t id) {
  auto set_int = [&](int name, int v, const char* what) {
    if (::setsockopt(fd, SOL_SOCKET, name, &v, sizeof v) < 0)
      fail_sys("socket {}: cannot set {}", id, what);
  };
  // The kernel doubles the buffer sizes it is given.
  if (o.so_sndbuf()) set_int(SO_SNDBUF, static_cast<int>(o.so_sndbuf() / 2), "SO_SNDBUF");
  if (o.so_rcvbuf()) set_int(SO_RCVBUF, static_cast<int>(o.so_rcvbuf() / 2), "SO_RCVBUF");
  timeval st{static_cast<time_t>(o.so_snd_tmo_sec()),
             static_cast<suseconds_t>(o.so_snd_tmo_usec())};
  timeval rt{static_cast<time_t>(o.so_rcv_tmo_sec()),
             static_cast<suseconds_t>(o.so_rcv_tmo_usec())};
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &st, sizeof st) < 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof rt) < 0)
    fail_sys("socket {}: cannot set its timeouts", id);
  if (o.so_passcred()) set_int(SO_PASSCRED, 1, "SO_PASSCRED");
  if (o.so_keepalive()) set_int(SO_KEEPALIVE, 1, "SO_KEEPALIVE");
  if (o.so_broadcast()) set_int(SO_BROADCAST, 1, "SO_BROADCAST");
}

UnixSockets::UnixSockets(const Plan& plan, std::function<int(uint32_t)> get,
                         std::function<void(uint32_t, Fd)> adopt)
    : plan_(plan), get_(std::move(get)), adopt_(std::move(adopt)) {
  for (const auto& [id, f] : plan.files)
    if (f.type() == UNIXSK) inos_[f.usk().ino()] = &f.usk();
}

const unix_sk_entry* UnixSockets::by_ino(uint32_t ino) const {
  auto it = inos_.find(ino);
  return it == inos_.end() ? nullptr : it->second;
}

// Puts u's saved queue back, sent from `sender` (its peer) or, for a bound datagram socket
// without a peer of its own, from a socket of cryo's. The queued bytes are charged to the
// sender until they are read: its send buffer is raised for the time of the filling, and a
// socket that takes no more fails rather than blocks.
void UnixSockets::fill(int fd, const unix_sk_entry& u, int sender, const std::string& dest) {
  auto it = plan_.sk_queues.find(u.id());
  if (it == plan_.sk_queues.end()) return;
  Fd tmp;
  if (sender < 0) {
    if (u.type() == SOCK_STREAM || u.name().empty())
      fail("unix socket {} has queued data but no peer to send it from", u.id());
    tmp.reset(::socket(AF_UNIX, static_cast<int>(u.type()) | SOCK_CLOEXEC, 0));
    connect_to(tmp.get(), u.name(), u.id());
    sender = tmp.get();
  }
  (void)fd;
  size_t total = 0;
  for (const std::string& m : it->second) total += m.size() + kSocketMsgOverhead;
  int old_buf = 0;
  socklen_t len = sizeof old_buf;
  ::getsockopt(sender, SOL_SOCKET, SO_SNDBUF, &old_buf, &len);
  // (The planner refused queues over kSocketQueueMax.)
  int want = static_cast<int>(std::min<size_t>(total, kSocketQueueMax) + (1 << 16));
  if (want > old_buf) ::setsockopt(sender, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want);
  socklen_t dlen = 0;
  sockaddr_un to{};
  if (!dest.empty()) to = address(dest, &dlen);
  size_t sent = 0;
  for (const std::string& m : it->second) {
    size_t off = 0;
    do {
      ssize_t n = ::sendto(sender, m.data() + off, m.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT,
                           dlen ? reinterpret_cast<sockaddr*>(&to) : nullptr, dlen);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN)
        fail(
            "unix socket {} takes no more of its queued data after {} of {} messages (its queue "
            "limits, e.g. net.unix.max_dgram_qlen, are lower here than where it was dumped)",
            u.id(), sent, it->second.size());
      if (n < 0) fail_sys("cannot put {} queued bytes back into unix socket {}", m.size(), u.id());
      off += static_cast<size_t>(n);
    } while (u.type() == SOCK_STREAM && off < m.size());
    sent++;
  }
  // The sender's own size again (the kernel reports twice what it was given).
  if (want > old_buf) {
    int half = old_buf / 2;
    ::setsockopt(sender, SOL_SOCKET, SO_SNDBUFFORCE, &half, sizeof half);
  }
}

void UnixSockets::bind(int fd, const std::string& name, uint32_t id) {
  bind_to(fd, name, id);
  if (name[0] == '\0') return;
  struct stat st;
  if (::stat(name.c_str(), &st) == 0) bound_.push_back({name.c_str(), st.st_dev, st.st_ino});
}

UnixSockets::~UnixSockets() {
  for (const Bound& b : bound_) {
    struct stat st;
    if (::lstat(b.path.c_str(), &st) == 0 && st.st_dev == b.dev && st.st_ino == b.ino)
      ::unlink(b.path.c_str());
  }
}

Fd UnixSockets::open(const file_entry& f) {
  const unix_sk_entry& u = f.usk();
  const int type = static_cast<int>(u.type());
  if (u.uflags() & image::kUskExtern)
    fail("image files.img is corrupt: unix socket {} is outside the tree but a task holds it",
         u.id());
  auto make = [&] {
    Fd s(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
    if (!s) fail_sys("cannot create unix socket {}", u.id());
    return s;
  };
  auto set_opts = [&](int fd, const unix_sk_entry& e) {
    apply_sk_opts(fd, e.opts(), e.id());
    if (::fcntl(fd, F_SETFL, e.flags() & O_NONBLOCK) < 0)
      fail_sys("cannot set the flags of unix socket {}", e.id());
  };
  auto finish = [&](int fd, const unix_sk_entry& e) {
    if (e.has_shutdown() && e.shutdown() != NONE) {
      int how = e.shutdown() == READ ? SHUT_RD : e.shutdown() == WRITE ? SHUT_WR : SHUT_RDWR;
      ::shutdown(fd, how);
    }
  };

  if (u.state() == image::kSkListen) {
    Fd s = make();
    set_opts(s.get(), u);
    if (u.name().empty()) fail("unix socket {} listens without a name", u.id());
    bind(s.get(), u.name(), u.id());
    if (::listen(s.get(), static_cast<int>(u.backlog() ? u.backlog() : 128)) < 0)
      fail_sys("cannot listen on unix socket {} ({})", u.id(),
               kernel::unix_name_printable(u.name()));
    return s;
  }
  const unix_sk_entry* peer = u.peer() ? by_ino(u.peer()) : nullptr;
  if (u.peer() && !peer)
    fail("unix socket {} is connected to socket {} which the images do not hold", u.id(), u.peer());

  const bool outside = peer && (peer->uflags() & image::kUskExtern);
  if (peer && !outside && peer->state() == image::kSkListen) {
    // Waiting in a listener's backlog: connect to it again (it is created first).
    get_(peer->id());
    Fd s = make();
    set_opts(s.get(), u);
    connect_to(s.get(), peer->name(), u.id());
    finish(s.get(), u);
    return s;
  }
  if (type == SOCK_DGRAM && u.peer() == u.ino()) {
    // A datagram socket connected to itself (by its name): what it sent to itself is queued.
    if (u.name().empty()) fail("unix socket {} is connected to itself but has no name", u.id());
    Fd s = make();
    set_opts(s.get(), u);
    bind(s.get(), u.name(), u.id());
    connect_to(s.get(), u.name(), u.id());
    fill(s.get(), u, s.get());
    finish(s.get(), u);
    return s;
  }
  if (peer && peer->peer() == u.ino()) {
    // Connected to each other: a socketpair (datagram ends keep their names).
    int sv[2];
    if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) < 0)
      fail_sys("cannot create unix sockets {} and {}", u.id(), peer->id());
    Fd mine(sv[0]), theirs(sv[1]);
    set_opts(mine.get(), u);
    set_opts(theirs.get(), *peer);
    if (type == SOCK_DGRAM) {
      if (!u.name().empty()) bind(mine.get(), u.name(), u.id());
      if (!peer->name().empty()) bind(theirs.get(), peer->name(), peer->id());
    }
    fill(mine.get(), u, theirs.get());
    fill(theirs.get(), *peer, mine.get());
    finish(mine.get(), u);
    finish(theirs.get(), *peer);
    adopt_(peer->id(), std::move(theirs));
    return mine;
  }

  // (A datagram socket others connect to reads as established too: its own mark says.)
  const bool peer_closed =
      !peer && (type == SOCK_DGRAM ? u.cryo_peer_closed() : u.state() == 1 /* TCP_ESTABLISHED */);
  if (peer_closed) {
    // Connected, but its peer has been closed: a socketpair whose other end goes away once
    // the queued data is in, so reads give that data and then end of file (a datagram
    // socket's sends then fail with ECONNREFUSED, as they would have).
    int sv[2];
    if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) < 0)
      fail_sys("cannot create unix socket {}", u.id());
    Fd mine(sv[0]), theirs(sv[1]);
    set_opts(mine.get(), u);
    // (A connected stream socket shows its listener's name: only a datagram one has its own.)
    if (type == SOCK_DGRAM && !u.name().empty()) bind(mine.get(), u.name(), u.id());
    fill(mine.get(), u, theirs.get());
    theirs.reset();
    finish(mine.get(), u);
    return mine;
  }
  Fd s = make();
  set_opts(s.get(), u);
  if (!u.name().empty()) bind(s.get(), u.name(), u.id());
  if (peer && !outside && !u.name().empty()) {
    // A datagram socket connected to a bound one that is not connected back: its queue is
    // refilled by that peer (a connected socket takes messages from its peer only, and a
    // peer is held to no queue length), sending to this socket's name.
    int from = get_(peer->id());
    connect_to(s.get(), peer->name(), u.id());
    fill(s.get(), u, from, u.name());
    finish(s.get(), u);
    return s;
  }
  // Queued messages come from a socket of cryo's, before the connect.
  fill(s.get(), u, -1);
  if (outside) {
    // Connected to a socket outside the tree (--ext-unix-sk): that socket's name again.
    connect_to(s.get(), peer->name(), u.id(),
               " (the socket outside the dumped tree it was connected to: start its owner "
               "before restoring)");
    log::info("unix socket {} connected again to {} outside the tree", u.id(),
              kernel::unix_name_printable(peer->name()));
  } else if (peer) {
    // A datagram socket connected to a bound one that is not connected back.
    get_(peer->id());
    connect_to(s.get(), peer->name(), u.id());
  }
  finish(s.get(), u);
  return s;
}

namespace {

class UnixSocketKind : public FileKind {
 public:
  fd_types type() const override { return UNIXSK; }
  Fd open(const file_entry& f, FileSet& files) override {
    if (!sockets_)
      sockets_ = std::make_unique<UnixSockets>(
          files.plan(), [&files](uint32_t id) { return files.get(id); },
          [&files](uint32_t id, Fd fd) { files.adopt(id, std::move(fd)); });
    return sockets_->open(f);
  }
  void keep() override {
    if (sockets_) sockets_->keep();
  }
  void needs(const file_entry& f, const Plan& plan, std::vector<uint32_t>* out) override {
    if (!f.usk().peer()) return;
    if (ids_.empty())
      for (const auto& [id, e] : plan.files)
        if (e.type() == UNIXSK) ids_[e.usk().ino()] = id;
    auto it = ids_.find(f.usk().peer());
    if (it == ids_.end()) return;
    // Ends connected to each other are made at once, as a pair: neither waits for the other.
    if (plan.files.at(it->second).usk().peer() == f.usk().ino()) return;
    out->push_back(it->second);
  }

 private:
  std::unique_ptr<UnixSockets> sockets_;
  std::map<uint32_t, uint32_t> ids_;  // socket inode -> file id
};

}  // namespace

std::unique_ptr<FileKind> make_unix_socket_kind() {
  return std::make_unique<UnixSocketKind>();
}

}  // namespace cryo::restore
