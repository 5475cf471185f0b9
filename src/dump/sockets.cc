#include "dump/sockets.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "dump/event_files.h"
#include "dump/files.h"
#include "image/fdinfo.h"
#include "image/image.h"
#include "kernel/syscalls.h"
#include "proc/proc.h"

namespace cryo::dump {
int sk_int_opt(int s, int level, int name) {
  int v = 0;
  socklen_t len = sizeof v;
  if (::getsockopt(s, level, name, &v, &len) < 0) return 0;
  return v;
}

void fill_sk_opts(int s, sk_opts_entry* o) {
  o->set_so_sndbuf(static_cast<uint32_t>(sk_int_opt(s, SOL_SOCKET, SO_SNDBUF)));
  o->set_so_rcvbuf(static_cast<uint32_t>(sk_int_opt(s, SOL_SOCKET, SO_RCVBUF)));
  timeval tv{};
  socklen_t len = sizeof tv;
  ::getsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, &len);
  o->set_so_snd_tmo_sec(tv.tv_sec);
  o->set_so_snd_tmo_usec(tv.tv_usec);
  tv = {};
  len = sizeof tv;
  ::getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, &len);
  o->set_so_rcv_tmo_sec(tv.tv_sec);
  o->set_so_rcv_tmo_usec(tv.tv_usec);
  if (sk_int_opt(s, SOL_SOCKET, SO_PASSCRED)) o->set_so_passcred(true);
  if (sk_int_opt(s, SOL_SOCKET, SO_REUSEADDR)) o->set_reuseaddr(true);
  if (sk_int_opt(s, SOL_SOCKET, SO_REUSEPORT)) o->set_so_reuseport(true);
  if (sk_int_opt(s, SOL_SOCKET, SO_KEEPALIVE)) o->set_so_keepalive(true);
  if (sk_int_opt(s, SOL_SOCKET, SO_BROADCAST)) o->set_so_broadcast(true);
}

void UnixSockets::dump(FdContext& c, uint32_t id, file_entry* e) {
  const pid_t pid = c.pid;
  const int fd = c.fd;
  const uint32_t ino = c.link_inode();
  const uint32_t flags = c.flags;
  if (!loaded_) {
    diag_ = kernel::unix_diag_all();
    loaded_ = true;
  }
  auto it = diag_.find(ino);
  if (it == diag_.end())
    fail("task {} fd {}: unix socket {} is unknown to sock_diag (another network namespace?)", pid,
         fd, ino);
  const kernel::UnixDiag& d = it->second;
  const int sk = c.copy();

  auto* u = e->mutable_usk();
  u->set_id(id);
  u->set_ino(ino);
  u->set_type(d.type);
  u->set_state(d.state);
  u->set_flags(flags);
  u->set_uflags(0);
  u->set_backlog(d.state == image::kSkListen ? d.wqueue : 0);
  // A connection still in a listener's backlog has no peer of its own: the listener lists it.
  uint32_t peer = d.peer;
  if (!peer && d.state == 1 /* TCP_ESTABLISHED */)
    for (const auto& [lino, l] : diag_)
      for (uint32_t c : l.icons)
        if (c == ino) peer = lino;
  u->set_peer(peer);
  // A datagram socket whose peer was closed is still connected to it (getpeername works),
  // though sock_diag shows no peer.
  if (d.type == SOCK_DGRAM && !peer) {
    sockaddr_storage a;
    socklen_t alen = sizeof a;
    if (::getpeername(sk, reinterpret_cast<sockaddr*>(&a), &alen) == 0)
      u->set_cryo_peer_closed(true);
  }
  zero_fown(u->mutable_fown());
  fill_sk_opts(sk, u->mutable_opts());
  // A path name may come with its terminating NUL; an abstract one is kept as it is.
  std::string name = d.name;
  if (!name.empty() && name[0] != '\0') name = name.c_str();
  u->set_name(name);
  if (d.shutdown) u->set_shutdown(static_cast<sk_shutdown>(d.shutdown & 3));
  dumped_[ino] = {pid, fd, id, false};

  if (d.state == image::kSkListen) return;  // a listener has no data of its own
  // Queued data, peeked message by message from offset 0 on; the peek offset is put back.
  int old_off = -1;
  socklen_t len = sizeof old_off;
  ::getsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &old_off, &len);
  int zero = 0;
  if (::setsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) < 0)
    fail_sys("task {} fd {}: cannot peek into unix socket {}", pid, fd, ino);
  // The socket is the task's own: its peek offset goes back whatever happens.
  struct PeekBack {
    int fd, off;
    ~PeekBack() { ::setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off); }
  } peek_back{sk, old_off};
  std::string& buf = peek_buf_;  // one for all sockets: zeroing 1 MiB each costs
  if (buf.empty()) buf.resize(1 << 20);
  std::string stream;
  const size_t queued_before = queues_.size();
  char ctl[CMSG_SPACE(sizeof(int) * 64)];
  for (;;) {
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl;
    msg.msg_controllen = sizeof ctl;
    ssize_t n = ::recvmsg(sk, &msg, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EAGAIN) break;
      fail_sys("task {} fd {}: cannot peek into unix socket {}", pid, fd, ino);
    }
    if (msg.msg_controllen > 0 || (msg.msg_flags & MSG_CTRUNC))
      fail(
          "task {} fd {}: unix socket {} holds messages carrying fds or credentials: not "
          "supported yet",
          pid, fd, ino);
    if (static_cast<size_t>(n) > buf.size())
      fail("task {} fd {}: unix socket {} holds a message of {} bytes: too big", pid, fd, ino, n);
    if (n == 0 && d.type == SOCK_STREAM) break;
    if (d.type == SOCK_STREAM) {
      stream.append(buf.data(), static_cast<size_t>(n));
    } else {
      Packet p;
      p.entry.set_id_for(id);
      p.entry.set_length(static_cast<uint32_t>(n));
      p.data.assign(buf.data(), static_cast<size_t>(n));
      queues_.push_back(std::move(p));
    }
  }
  if (!stream.empty() || queues_.size() > queued_before) dumped_[ino].queued = true;
  if (!stream.empty()) {
    Packet p;
    p.entry.set_id_for(id);
    p.entry.set_length(static_cast<uint32_t>(stream.size()));
    p.data = std::move(stream);
    queues_.push_back(std::move(p));
  }
}

namespace {}  // namespace

std::string UnixSockets::describe(uint32_t ino) const {
  auto it = diag_.find(ino);
  if (it == diag_.end()) return fmt::format("socket {} (unknown to sock_diag)", ino);
  static const char* const kTypes[] = {"?", "stream", "dgram", "?", "?", "seqpacket"};
  const char* type = it->second.type < 6 ? kTypes[it->second.type] : "?";
  return fmt::format("{} socket {} ({})", type, ino, kernel::unix_name_printable(it->second.name));
}

std::vector<file_entry> UnixSockets::finish(bool ext_unix_sk,
                                            const std::function<uint32_t()>& new_id) {
  std::vector<file_entry> outside;
  std::map<uint32_t, uint32_t> outside_ids;  // inode -> id of its entry
  for (const auto& [ino, where] : dumped_) {
    const kernel::UnixDiag& d = diag_.at(ino);
    const std::string self =
        fmt::format("task {} fd {}: unix {}", where.pid, where.fd, describe(ino));

    if (d.state == image::kSkListen) {
      for (uint32_t c : d.icons) {
        // A connection whose client has closed: whatever it sent is out of reach.
        if (c == 0)
          fail(
              "{} has a connection waiting to be accepted whose client has closed it already: "
              "the data it may hold cannot be read without accepting it; let the server accept "
              "it and dump again",
              self);
        if (!dumped_.count(c))
          log::warn("{}: the waiting connection from {} outside the tree is not restored", self,
                    describe(c));
      }
      continue;
    }

    uint32_t peer = d.peer;
    if (!peer && d.state == 1 /* TCP_ESTABLISHED */) {
      // A connection still in a listener's backlog: what the client sent waits in the
      // listener's embryo socket, which only accept() reaches; accepting cannot be undone
      // (--leave-running, a failed dump), so that data cannot be saved.
      for (const auto& [lino, l] : diag_) {
        if (std::find(l.icons.begin(), l.icons.end(), ino) == l.icons.end()) continue;
        std::string listener =
            dumped_.count(lino)
                ? fmt::format("task {} fd {}", dumped_.at(lino).pid, dumped_.at(lino).fd)
                : proc::socket_holder(lino);
        if (d.wqueue)
          fail(
              "{} sent data ({} bytes of socket buffer in use) on a connection that the "
              "listening {} ({}) has not accepted yet: cryo cannot read it without accepting the "
              "connection, which cannot be undone; let the server accept it and dump again",
              self, d.wqueue, describe(lino), listener);
        if (!dumped_.count(lino))
          fail(
              "{} waits to be accepted by the listening {} outside the dumped tree ({}): half of "
              "a stream connection cannot be restored, even with --ext-unix-sk; dump the "
              "server's tree with it",
              self, describe(lino), listener);
        peer = lino;
      }
    }
    // An unnamed datagram socket takes messages only from a socket connected to it, and
    // connecting it elsewhere afterwards empties its queue: restore can refill it only when
    // it and its peer are connected to each other (a pair), or its peer was closed.
    if (d.type == SOCK_DGRAM && where.queued && d.name.empty() && peer) {
      auto pd = diag_.find(peer);
      if (pd == diag_.end() || pd->second.peer != ino)
        fail(
            "{} has messages queued, no name and no peer connected back to it: cryo cannot put "
            "them back on restore; read them and dump again",
            self);
    }
    if (!peer || dumped_.count(peer)) continue;

    // The peer is outside the tree.
    auto pd = diag_.find(peer);
    const std::string other = fmt::format("{}, {}", describe(peer), proc::socket_holder(peer));
    if (!ext_unix_sk)
      fail(
          "{} is connected to {} outside the dumped tree: dump with --ext-unix-sk to keep such a "
          "connection (the socket then connects to that name again on restore; datagram "
          "sockets only), or dump the peer's tree with it",
          self, other);
    if (d.type != SOCK_DGRAM || pd == diag_.end() || pd->second.type != SOCK_DGRAM)
      fail(
          "{} is connected to {} outside the dumped tree: --ext-unix-sk keeps only datagram "
          "sockets connected to a named socket; half of a stream connection cannot be restored",
          self, other);
    if (pd->second.name.empty())
      fail(
          "{} is connected to {} outside the dumped tree, which has no name to connect to again "
          "on restore: not supported even with --ext-unix-sk",
          self, other);
    if (where.queued && d.name.empty())
      fail(
          "{} holds messages and is connected to {} outside the dumped tree: only that peer "
          "could put them back into an unnamed socket; read them and dump again",
          self, other);
    if (outside_ids.count(peer)) continue;
    file_entry e;
    uint32_t id = new_id();
    e.set_id(id);
    e.set_type(UNIXSK);
    auto* u = e.mutable_usk();
    u->set_id(id);
    u->set_ino(peer);
    u->set_type(SOCK_DGRAM);
    u->set_state(10 /* TCP_LISTEN, as CRIU marks an outside peer */);
    u->set_flags(0);
    u->set_uflags(image::kUskExtern);
    u->set_backlog(0);
    u->set_peer(0);
    zero_fown(u->mutable_fown());
    auto* o = u->mutable_opts();
    o->set_so_sndbuf(0);
    o->set_so_rcvbuf(0);
    o->set_so_snd_tmo_sec(0);
    o->set_so_snd_tmo_usec(0);
    o->set_so_rcv_tmo_sec(0);
    o->set_so_rcv_tmo_usec(0);
    std::string name = pd->second.name;
    if (name[0] != '\0') name = name.c_str();
    u->set_name(name);
    outside_ids[peer] = id;
    outside.push_back(std::move(e));
    log::info("{}: connected to {} outside the tree (--ext-unix-sk)", self, other);
  }
  // Sockets outside the tree connected to a datagram socket of it keep pointing at the old
  // socket: after a restore they have to connect again.
  for (const auto& [ino, d] : diag_)
    if (d.peer && !dumped_.count(ino) && dumped_.count(d.peer) && d.type == SOCK_DGRAM)
      log::warn(
          "unix {} outside the tree is connected to {} of task {} fd {}: once restored, "
          "that socket has to connect again",
          describe(ino), describe(d.peer), dumped_.at(d.peer).pid, dumped_.at(d.peer).fd);
  return outside;
}

void UnixSockets::write(const std::string& dir) {
  if (queues_.empty()) return;
  image::Writer w(dir, "sk-queues.img", image::magic::kSkQueues);
  for (const auto& p : queues_) {
    w.put(p.entry);
    w.put_raw(p.data.data(), p.data.size());
  }
  w.close();
}

namespace {

class UnixSocketKind : public FileKind {
 public:
  fd_types type() const override { return UNIXSK; }
  bool claims(FdContext& c) override { return c.socket_domain() == AF_UNIX; }
  void dump(FdContext& c, uint32_t id, file_entry* e) override { sockets_.dump(c, id, e); }
  void finish(FileTable& t, const DumpEnd& end) override {
    for (auto& e : sockets_.finish(end.ext_unix_sk, [&t] { return t.new_id(); }))
      t.add_entry(std::move(e));
  }
  void write(const DumpEnd& end) override { sockets_.write(end.dir); }

 private:
  UnixSockets sockets_;
};

}  // namespace

std::unique_ptr<FileKind> make_unix_socket_kind(FileTable&) {
  return std::make_unique<UnixSocketKind>();
}

}  // namespace cryo::dump
