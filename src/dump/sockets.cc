#include "dump/sockets.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <net/if.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "base/strings.h"
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
  if (int v = sk_int_opt(s, SOL_SOCKET, SO_PRIORITY)) o->set_so_priority(static_cast<uint32_t>(v));
  if (int v = sk_int_opt(s, SOL_SOCKET, SO_RCVLOWAT); v > 1)
    o->set_so_rcvlowat(static_cast<uint32_t>(v));
  if (int v = sk_int_opt(s, SOL_SOCKET, SO_MARK)) o->set_so_mark(static_cast<uint32_t>(v));
  if (sk_int_opt(s, SOL_SOCKET, SO_PASSSEC)) o->set_so_passsec(true);
  if (sk_int_opt(s, SOL_SOCKET, SO_DONTROUTE)) o->set_so_dontroute(true);
  if (sk_int_opt(s, SOL_SOCKET, SO_NO_CHECK)) o->set_so_no_check(true);
  if (sk_int_opt(s, SOL_SOCKET, SO_OOBINLINE)) o->set_so_oobinline(1);
  if (int v = sk_int_opt(s, SOL_SOCKET, SO_BUF_LOCK)) o->set_so_buf_lock(static_cast<uint32_t>(v));
  linger lg{};
  len = sizeof lg;
  if (::getsockopt(s, SOL_SOCKET, SO_LINGER, &lg, &len) == 0 && lg.l_onoff)
    o->set_so_linger(static_cast<uint32_t>(lg.l_linger));
  char dev[IFNAMSIZ + 1] = {};
  len = IFNAMSIZ;
  if (::getsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, dev, &len) == 0 && len > 0 && dev[0])
    o->set_so_bound_dev(dev);
  // A classic BPF filter (SO_ATTACH_FILTER): its instructions, 8 bytes each, as CRIU saves them.
  socklen_t count = 0;
  if (::getsockopt(s, SOL_SOCKET, SO_GET_FILTER, nullptr, &count) == 0 && count > 0) {
    std::vector<sock_filter> f(count);
    if (::getsockopt(s, SOL_SOCKET, SO_GET_FILTER, f.data(), &count) < 0)
      fail_sys("socket: cannot read its BPF filter");
    for (socklen_t i = 0; i < count; i++) {
      uint64_t w;
      std::memcpy(&w, &f[i], sizeof w);
      o->add_so_filter(w);
    }
  }
}

// A socket bound to a path: its file's mode and owner, whether that file is still the socket's
// (or was deleted, or replaced by another file), and for a relative name the directory it was
// bound from. The kernel opens the socket's own file for us (SIOCUNIXFILE), wherever it is.
void UnixSockets::resolve_name(FdContext& c, unix_sk_entry* u) {
  Fd file(::ioctl(c.copy(), kernel::kSiocUnixFile));
  if (!file)
    fail_sys("{}: cannot open the file of unix socket {} bound to {}", c.where(), u->ino(),
             kernel::unix_name_printable(u->name()));
  struct stat st;
  if (::fstat(file.get(), &st) < 0) fail_sys("{}: cannot stat its socket file", c.where());
  auto* perms = u->mutable_file_perms();
  perms->set_mode(st.st_mode);
  perms->set_uid(st.st_uid);
  perms->set_gid(st.st_gid);
  std::string path = proc::read_link(fmt::format("/proc/self/fd/{}", file.get()));
  constexpr std::string_view kDeleted = " (deleted)";
  if (path.size() > kDeleted.size() &&
      path.compare(path.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0) {
    path.resize(path.size() - kDeleted.size());
    u->set_deleted(true);
  }
  const std::string& name = u->name();
  if (name[0] != '/') {
    // Bound by a relative name: the directory it was bound in is what the path shows before it.
    const std::string tail = "/" + name;
    if (path.size() <= tail.size() ||
        path.compare(path.size() - tail.size(), tail.size(), tail) != 0)
      fail("{}: unix socket {} is bound to the relative name {}, but its file is {}", c.where(),
           u->ino(), printable(name), printable(path));
    u->set_name_dir(path.substr(0, path.size() - tail.size()));
  }
  log::debug("{}: unix socket {} bound to {} (file {}{}, mode {:o})", c.where(), u->ino(),
             printable(name), printable(path), u->deleted() ? ", deleted" : "", st.st_mode);
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
  if (!name.empty() && name[0] != '\0') resolve_name(c, u);
  if (d.shutdown) u->set_shutdown(static_cast<sk_shutdown>(d.shutdown & 3));
  dumped_[ino] = {pid, fd, id, false};

  if (d.state == image::kSkListen) return;  // a listener has no data of its own
  // A stream or seqpacket socket never connected has no queue (recvmsg says EINVAL).
  if (d.type != SOCK_DGRAM && d.state != image::kSkEstablished) return;
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
  // Room for the most fds one message carries (SCM_MAX_FD) and the credentials.
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * 253) + CMSG_SPACE(sizeof(ucred)) + 256];
  auto flush_stream = [&] {
    if (stream.empty()) return;
    Packet p;
    p.entry.set_id_for(id);
    p.entry.set_length(static_cast<uint32_t>(stream.size()));
    p.data = std::move(stream);
    stream.clear();
    queues_.push_back(std::move(p));
  };
  for (;;) {
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl;
    msg.msg_controllen = sizeof ctl;
    ssize_t n = ::recvmsg(sk, &msg, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EAGAIN) break;
      fail_sys("task {} fd {}: cannot peek into unix socket {}", pid, fd, ino);
    }
    // Fds in flight: the peek gave cryo copies of them (closed unless kept below).
    std::vector<Fd> got;
    for (cmsghdr* h = CMSG_FIRSTHDR(&msg); h; h = CMSG_NXTHDR(&msg, h))
      if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
        const size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
          int f;
          std::memcpy(&f, CMSG_DATA(h) + i * sizeof(int), sizeof f);
          got.emplace_back(f);
        }
      }
    if (msg.msg_flags & MSG_CTRUNC)
      fail("task {} fd {}: unix socket {} holds a message with more control data than cryo reads",
           pid, fd, ino);
    if (static_cast<size_t>(n) > buf.size())
      fail("task {} fd {}: unix socket {} holds a message of {} bytes: too big", pid, fd, ino, n);
    if (n == 0 && d.type == SOCK_STREAM && got.empty()) break;
    Packet p;
    p.entry.set_id_for(id);
    p.entry.set_length(static_cast<uint32_t>(n));
    for (cmsghdr* h = CMSG_FIRSTHDR(&msg); h; h = CMSG_NXTHDR(&msg, h)) {
      if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
        auto* scm = p.entry.add_scm();
        scm->set_type(SCM_RIGHTS);
        for (Fd& f : got) {
          if (!table_) fail("internal: unix sockets without their file table");
          try {
            scm->add_rights(table_->dump_held_file(self_, f.get()));
          } catch (const Error& err) {
            fail(
                "task {} fd {}: unix socket {} holds a message carrying a file cryo cannot save: "
                "{}",
                pid, fd, ino, err.what());
          }
          held_.push_back(std::move(f));
        }
        got.clear();
      } else if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_CREDENTIALS &&
                 h->cmsg_len == CMSG_LEN(sizeof(ucred))) {
        ucred cr;
        std::memcpy(&cr, CMSG_DATA(h), sizeof cr);
        auto* u = p.entry.mutable_ucred();
        u->set_uid(cr.uid);
        u->set_gid(cr.gid);
        u->set_pid(static_cast<uint32_t>(cr.pid));
        senders_.push_back({cr.pid, pid, fd, ino});
      } else {
        fail(
            "task {} fd {}: unix socket {} holds a message with control data of level {} type "
            "{}: only fds (SCM_RIGHTS) and credentials are supported",
            pid, fd, ino, h->cmsg_level, h->cmsg_type);
      }
    }
    const bool plain = p.entry.scm_size() == 0 && !p.entry.has_ucred();
    if (d.type == SOCK_STREAM && plain) {
      stream.append(buf.data(), static_cast<size_t>(n));
      continue;
    }
    // A stream's data with fds or credentials stays a piece of its own: they go with it.
    flush_stream();
    p.data.assign(buf.data(), static_cast<size_t>(n));
    queues_.push_back(std::move(p));
    if (d.type == SOCK_STREAM && n == 0) break;
  }
  flush_stream();
  if (queues_.size() > queued_before) dumped_[ino].queued = true;
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
                                            const std::function<uint32_t()>& new_id,
                                            const std::function<bool(pid_t)>& in_tree) {
  // Credentials name their sender's pid: restore can send them again only as a task of the
  // tree (or a process that still runs then, which cryo cannot promise).
  for (const Sender& s : senders_)
    if (s.pid && in_tree && !in_tree(s.pid))
      fail(
          "task {} fd {}: unix {} holds a message sent with the credentials of pid {}, which is "
          "not in the dumped tree ({}): restore could not send it again as that process; read "
          "the message, or dump the sender's tree with it",
          s.task, s.fd, describe(s.ino), s.pid,
          proc::try_read_file(fmt::format("/proc/{}/comm", s.pid)).has_value() ? "running"
                                                                               : "exited");
  std::vector<file_entry> outside;
  std::map<uint32_t, uint32_t> outside_ids;  // inode -> id of its entry
  for (const auto& [ino, where] : dumped_) {
    const kernel::UnixDiag& d = diag_.at(ino);
    // (A socket no task holds travels in a message, held by cryo for the dump.)
    const std::string self =
        where.pid == ::getpid()
            ? fmt::format("unix {}, in flight in a message queued on another socket", describe(ino))
            : fmt::format("task {} fd {}: unix {}", where.pid, where.fd, describe(ino));

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
    for (auto& e : sockets_.finish(
             end.ext_unix_sk, [&t] { return t.new_id(); }, end.in_tree))
      t.add_entry(std::move(e));
  }
  void write(const DumpEnd& end) override { sockets_.write(end.dir); }
  explicit UnixSocketKind(FileTable& t) : sockets_(&t) {}

 private:
  UnixSockets sockets_;
};

}  // namespace

std::unique_ptr<FileKind> make_unix_socket_kind(FileTable& t) {
  return std::make_unique<UnixSocketKind>(t);
}

}  // namespace cryo::dump
