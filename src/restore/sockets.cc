#include "restore/sockets.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <set>

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

// A relative socket name is bound and reached from the directory it was bound in: cryo works
// in that directory for the time of the call, then goes back.
class InDir {
 public:
  explicit InDir(const std::string& dir) {
    if (dir.empty()) return;
    back_.reset(::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!back_) fail_sys("cannot open cryo's working directory");
    if (::chdir(dir.c_str()) < 0) fail_sys("cannot enter {}", printable(dir));
  }
  ~InDir() {
    if (back_) (void)::fchdir(back_.get());
  }

 private:
  Fd back_;
};

// Whether a socket file `st` is one a live socket is bound to now.
std::optional<uint32_t> live_socket_at(const struct stat& st) {
  for (const auto& [ino, d] : kernel::unix_diag_all())
    if (d.vfs_ino && d.vfs_ino == st.st_ino && kernel::same_kernel_dev(d.vfs_dev, st.st_dev))
      return ino;
  return std::nullopt;
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
  if (o.so_priority()) set_int(SO_PRIORITY, static_cast<int>(o.so_priority()), "SO_PRIORITY");
  if (o.has_so_rcvlowat()) set_int(SO_RCVLOWAT, static_cast<int>(o.so_rcvlowat()), "SO_RCVLOWAT");
  if (o.so_mark()) set_int(SO_MARK, static_cast<int>(o.so_mark()), "SO_MARK");
  if (o.so_passsec()) set_int(SO_PASSSEC, 1, "SO_PASSSEC");
  if (o.so_dontroute()) set_int(SO_DONTROUTE, 1, "SO_DONTROUTE");
  if (o.so_no_check()) set_int(SO_NO_CHECK, 1, "SO_NO_CHECK");
  if (o.so_oobinline()) set_int(SO_OOBINLINE, 1, "SO_OOBINLINE");
  if (o.has_so_linger()) {
    linger lg{1, static_cast<int>(o.so_linger())};
    if (::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0)
      fail_sys("socket {}: cannot set SO_LINGER", id);
  }
  if (!o.so_bound_dev().empty() &&
      ::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, o.so_bound_dev().data(),
                   static_cast<socklen_t>(o.so_bound_dev().size())) < 0)
    fail_sys(
        "socket {}: cannot bind it to device {} (SO_BINDTODEVICE): is there such an "
        "interface here?",
        id, printable(o.so_bound_dev()));
  if (o.so_filter_size() > 0) {
    std::vector<sock_filter> f(static_cast<size_t>(o.so_filter_size()));
    for (int i = 0; i < o.so_filter_size(); i++) {
      uint64_t w = o.so_filter(i);
      std::memcpy(&f[static_cast<size_t>(i)], &w, sizeof w);
    }
    sock_fprog prog{static_cast<unsigned short>(f.size()), f.data()};
    if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0)
      fail_sys("socket {}: cannot attach its BPF filter of {} instructions", id, f.size());
  }
  // Last: setting the buffer sizes above locked them.
  if (o.has_so_buf_lock()) set_int(SO_BUF_LOCK, static_cast<int>(o.so_buf_lock()), "SO_BUF_LOCK");
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

// The address that reaches socket `to`: its name, or for a socket whose file was deleted its
// file through cryo's O_PATH fd on it (kept from the bind).
sockaddr_un UnixSockets::reach(const unix_sk_entry& to, socklen_t* len) const {
  if (auto g = ghosts_.find(to.id()); g != ghosts_.end())
    return address(fmt::format("/proc/self/fd/{}", g->second.get()), len);
  return address(to.name(), len);
}

void UnixSockets::connect(int fd, const unix_sk_entry& to, uint32_t id, const char* hint) {
  socklen_t len;
  sockaddr_un a = reach(to, &len);
  InDir dir(ghosts_.count(to.id()) ? "" : to.name_dir());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), len) < 0)
    fail_sys("cannot connect unix socket {} to {}{}", id, kernel::unix_name_printable(to.name()),
             hint);
}

// Puts u's saved queue back, sent from `sender` (its peer; to `dest` when given) or, for a
// bound datagram socket without a peer of its own, from a socket of cryo's. Messages carry
// their fds (cryo's own files of the ids saved) and credentials again. The queued bytes are
// charged to the sender until they are read: its send buffer is raised for the time of the
// filling, and a socket that takes no more fails rather than blocks.
void UnixSockets::fill(const unix_sk_entry& u, int sender, const unix_sk_entry* dest) {
  auto it = plan_.sk_queues.find(u.id());
  if (it == plan_.sk_queues.end()) return;
  const std::vector<sk_packet_entry>& entries = plan_.sk_packets.at(u.id());
  if (filling_.count(u.id()))
    fail("unix socket {} holds itself in a message in its own queue: not supported", u.id());
  filling_.insert(u.id());
  struct Done {
    std::set<uint32_t>& s;
    uint32_t id;
    ~Done() { s.erase(id); }
  } done{filling_, u.id()};
  Fd tmp;
  if (sender < 0) {
    if (u.type() == SOCK_STREAM || u.name().empty())
      fail("unix socket {} has queued data but no peer to send it from", u.id());
    tmp.reset(::socket(AF_UNIX, static_cast<int>(u.type()) | SOCK_CLOEXEC, 0));
    connect(tmp.get(), u, u.id());
    sender = tmp.get();
  }
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
  std::optional<InDir> dir;
  if (dest) {
    to = reach(*dest, &dlen);
    if (!ghosts_.count(dest->id())) dir.emplace(dest->name_dir());
  }
  size_t sent = 0;
  for (size_t i = 0; i < it->second.size(); i++) {
    const std::string& m = it->second[i];
    const sk_packet_entry& e = entries[i];
    // Control data: the fds first (each file opened by cryo), then the credentials.
    std::vector<int> fds;
    for (const scm_entry& scm : e.scm())
      for (uint32_t id : scm.rights()) fds.push_back(get_(id));
    std::vector<char> ctl(CMSG_SPACE(sizeof(int) * fds.size()) + CMSG_SPACE(sizeof(ucred)));
    msghdr msg{};
    msg.msg_control = ctl.data();
    msg.msg_controllen = ctl.size();
    size_t ctl_len = 0;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    if (!fds.empty()) {
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
      ctl_len += CMSG_SPACE(sizeof(int) * fds.size());
      c = CMSG_NXTHDR(&msg, c);
    }
    if (e.has_ucred() && e.ucred().pid()) {
      ucred cred{static_cast<pid_t>(e.ucred().pid()), e.ucred().uid(), e.ucred().gid()};
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_CREDENTIALS;
      c->cmsg_len = CMSG_LEN(sizeof cred);
      std::memcpy(CMSG_DATA(c), &cred, sizeof cred);
      ctl_len += CMSG_SPACE(sizeof cred);
    }
    msg.msg_controllen = ctl_len;
    if (!ctl_len) msg.msg_control = nullptr;
    msg.msg_name = dlen ? &to : nullptr;
    msg.msg_namelen = dlen;
    size_t off = 0;
    do {
      iovec iov{const_cast<char*>(m.data()) + off, m.size() - off};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      ssize_t n = ::sendmsg(sender, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN)
        fail(
            "unix socket {} takes no more of its queued data after {} of {} messages (its queue "
            "limits, e.g. net.unix.max_dgram_qlen, are lower here than where it was dumped)",
            u.id(), sent, it->second.size());
      if (n < 0 && errno == ESRCH && e.has_ucred())
        fail(
            "cannot put a message back into unix socket {}: it was sent by pid {}, which does "
            "not exist here",
            u.id(), e.ucred().pid());
      if (n < 0) fail_sys("cannot put {} queued bytes back into unix socket {}", m.size(), u.id());
      off += static_cast<size_t>(n);
      msg.msg_control = nullptr;  // (sent with the first part)
      msg.msg_controllen = 0;
    } while (u.type() == SOCK_STREAM && off < m.size());
    sent++;
  }
  // The sender's own size again (the kernel reports twice what it was given).
  if (want > old_buf) {
    int half = old_buf / 2;
    ::setsockopt(sender, SOL_SOCKET, SO_SNDBUFFORCE, &half, sizeof half);
  }
}

namespace {

// Creates the missing directories above `path` (absolute, or relative to the working
// directory); returns those it made, deepest last.
std::vector<std::string> make_parents(const std::string& path) {
  std::vector<std::string> missing;
  for (size_t slash = path.rfind('/'); slash != std::string::npos && slash > 0;
       slash = path.rfind('/', slash - 1)) {
    std::string dir = path.substr(0, slash);
    if (::access(dir.c_str(), F_OK) == 0) break;
    missing.push_back(dir);
  }
  std::vector<std::string> made;
  for (auto d = missing.rbegin(); d != missing.rend(); ++d) {
    if (::mkdir(d->c_str(), 0755) < 0 && errno != EEXIST) {
      for (auto m = made.rbegin(); m != made.rend(); ++m) ::rmdir(m->c_str());
      fail_sys("cannot make directory {} to bind a socket whose file was deleted", printable(*d));
    }
    made.push_back(*d);
  }
  return made;
}

void set_perms(const unix_sk_entry& u, const std::string& path) {
  if (!u.has_file_perms()) return;
  const file_perms_entry& p = u.file_perms();
  if (::chown(path.c_str(), p.uid(), p.gid()) < 0)
    fail_sys("unix socket {}: cannot give its file {} to uid {} gid {}", u.id(), printable(path),
             p.uid(), p.gid());
  if (::chmod(path.c_str(), p.mode() & 07777) < 0)
    fail_sys("unix socket {}: cannot set mode {:o} on its file {}", u.id(), p.mode() & 07777,
             printable(path));
}

}  // namespace

// Binds `fd` as socket `u` was bound: an abstract name as it is; a path name from the
// directory it was bound in (a relative name), with its file's mode and owner. A socket whose
// file was deleted (or replaced by another file since) is bound where it was, with the
// directories it needs made for the moment and whatever is at the path now moved aside, and
// its file deleted again at once; cryo keeps an O_PATH fd on it, through which sockets connect.
void UnixSockets::bind(int fd, const unix_sk_entry& u) {
  const std::string& name = u.name();
  socklen_t len;
  sockaddr_un a = address(name, &len);
  if (name[0] == '\0') {
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), len) < 0)
      fail_sys("cannot bind unix socket {} to {}", u.id(), kernel::unix_name_printable(name));
    return;
  }
  const std::string path = name.c_str();
  const std::string shown =
      u.name_dir().empty() || path[0] == '/'
          ? printable(path)
          : fmt::format("{} (in {})", printable(path), printable(u.name_dir()));
  if (u.deleted()) {
    std::vector<std::string> made;
    std::string dir = u.name_dir();
    if (!dir.empty() && path[0] != '/') made = make_parents(dir + "/" + path);
    {
      InDir in(dir);
      if (dir.empty() || path[0] == '/') made = make_parents(path);
      const std::string parked = path + ".cryo-sk-ghost";
      struct stat st;
      bool moved = false;
      if (::lstat(path.c_str(), &st) == 0) {
        ::unlink(parked.c_str());
        if (::rename(path.c_str(), parked.c_str()) < 0)
          fail_sys("cannot move {} aside to bind unix socket {} whose file was deleted there",
                   shown, u.id());
        moved = true;
      }
      struct Back {
        const std::string &path, &parked;
        bool moved;
        ~Back() {
          ::unlink(path.c_str());
          if (moved) ::rename(parked.c_str(), path.c_str());
        }
      } back{path, parked, moved};
      if (::bind(fd, reinterpret_cast<sockaddr*>(&a), len) < 0)
        fail_sys("cannot bind unix socket {} to {}", u.id(), shown);
      set_perms(u, path);
      Fd file(::open(path.c_str(), O_PATH | O_CLOEXEC));
      if (!file) fail_sys("cannot open the file of unix socket {} at {}", u.id(), shown);
      ghosts_[u.id()] = std::move(file);
    }
    for (auto m = made.rbegin(); m != made.rend(); ++m) ::rmdir(m->c_str());
    log::debug("unix socket {} bound to {}, whose file was deleted", u.id(), shown);
    return;
  }
  InDir in(u.name_dir());
  // The dumped process's socket file is still there: a socket no one is bound to any more.
  // One a live socket is bound to now belongs to someone else: never take it away.
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      fail("cannot bind unix socket {} to {}: {} is there now", u.id(), shown,
           file_kind(st.st_mode));
    if (auto ino = live_socket_at(st))
      fail(
          "cannot bind unix socket {} to {}: a running socket is bound there now ({}): stop it, "
          "or restore where the path is free",
          u.id(), shown, proc::socket_holder(*ino));
    ::unlink(path.c_str());
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), len) < 0)
    fail_sys("cannot bind unix socket {} to {}", u.id(), shown);
  set_perms(u, path);
  if (::stat(path.c_str(), &st) == 0) {
    std::string abs = path[0] == '/' ? path : u.name_dir() + "/" + path;
    bound_.push_back({abs, st.st_dev, st.st_ino});
  }
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
    bind(s.get(), u);
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
    connect(s.get(), *peer, u.id());
    finish(s.get(), u);
    return s;
  }
  if (type == SOCK_DGRAM && u.peer() == u.ino()) {
    // A datagram socket connected to itself (by its name): what it sent to itself is queued.
    if (u.name().empty()) fail("unix socket {} is connected to itself but has no name", u.id());
    Fd s = make();
    set_opts(s.get(), u);
    bind(s.get(), u);
    connect(s.get(), u, u.id());
    fill(u, s.get());
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
      if (!u.name().empty()) bind(mine.get(), u);
      if (!peer->name().empty()) bind(theirs.get(), *peer);
    }
    fill(u, theirs.get());
    fill(*peer, mine.get());
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
    if (type == SOCK_DGRAM && !u.name().empty()) bind(mine.get(), u);
    fill(u, theirs.get());
    theirs.reset();
    finish(mine.get(), u);
    return mine;
  }
  Fd s = make();
  set_opts(s.get(), u);
  if (!u.name().empty()) bind(s.get(), u);
  if (peer && !outside && !u.name().empty()) {
    // A datagram socket connected to a bound one that is not connected back: its queue is
    // refilled by that peer (a connected socket takes messages from its peer only, and a
    // peer is held to no queue length), sending to this socket's name.
    int from = get_(peer->id());
    connect(s.get(), *peer, u.id());
    fill(u, from, &u);
    finish(s.get(), u);
    return s;
  }
  // Queued messages come from a socket of cryo's, before the connect.
  fill(u, -1);
  if (outside) {
    // Connected to a socket outside the tree (--ext-unix-sk): that socket's name again.
    connect(s.get(), *peer, u.id(),
            " (the socket outside the dumped tree it was connected to: start its owner "
            "before restoring)");
    log::info("unix socket {} connected again to {} outside the tree", u.id(),
              kernel::unix_name_printable(peer->name()));
  } else if (peer) {
    // A datagram socket connected to a bound one that is not connected back.
    get_(peer->id());
    connect(s.get(), *peer, u.id());
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
