#include "dump/file_kind.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "base/error.h"

namespace cryo::dump {

namespace {

// An fd's number as its name in /proc/PID/fd and /proc/PID/fdinfo.
struct FdName {
  explicit FdName(int fd) { std::snprintf(s, sizeof s, "%d", fd); }
  char s[16];
};

// The text of fdinfo `name` in the task's /proc/PID/fdinfo. It is one seq_file record, which
// a read gives whole up to the buffer's size: a short read was the end.
std::string read_fdinfo_at(FdSource& source, const char* name, int fd) {
  Fd f(::openat(source.fdinfo_dir(), name, O_RDONLY | O_CLOEXEC));
  if (!f)
    fail_sys("task {} fd {}: cannot open /proc/{}/fdinfo/{}", source.pid(), fd, source.pid(), fd);
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t r = ::read(f.get(), buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0)
      fail_sys("task {} fd {}: cannot read /proc/{}/fdinfo/{}", source.pid(), fd, source.pid(), fd);
    text.append(buf, static_cast<size_t>(r));
    if (static_cast<size_t>(r) < sizeof buf) return text;
  }
}

std::string read_link_at(int dir, const char* name, pid_t pid, int fd) {
  std::string buf(256, '\0');
  for (;;) {
    ssize_t r = ::readlinkat(dir, name, buf.data(), buf.size());
    if (r < 0) fail_sys("task {} fd {}: cannot read the link /proc/{}/fd/{}", pid, fd, pid, fd);
    if (static_cast<size_t>(r) < buf.size()) {
      buf.resize(static_cast<size_t>(r));
      return buf;
    }
    buf.resize(buf.size() * 2);  // maybe cut short: again with more room
  }
}

// The device of pipefs, where every unnamed pipe lives.
dev_t pipefs_dev() {
  static const dev_t dev = [] {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) < 0) fail_sys("cannot make a pipe");
    Fd rd(p[0]), wr(p[1]);
    struct stat st;
    if (::fstat(rd.get(), &st) < 0) fail_sys("cannot stat a pipe");
    return st.st_dev;
  }();
  return dev;
}

}  // namespace

FdContext::FdContext(FdSource& source, int fd_num)
    : pid(source.pid()), fd(fd_num), source_(source) {
  proc_path = fmt::format("/proc/{}/fd/{}", pid, fd);
  reread_fdinfo();
  // Every eventfd is on one inode; its id tells them apart without comparing files.
  constexpr std::string_view kEventfdId = "\neventfd-id:";
  if (size_t at = fdinfo.find(kEventfdId); at != std::string::npos)
    object_id = std::strtoull(fdinfo.c_str() + at + kEventfdId.size(), nullptr, 10) + 1;
}

void FdContext::describe() {
  const FdName name(fd);
  // An O_PATH fd is looked at through /proc: cryo's copy could do nothing more.
  const int r = (flags & O_PATH) ? ::fstatat(source_.fd_dir(), name.s, &st, 0) : ::fstat(copy(), &st);
  if (r < 0) fail_sys("task {} fd {}: cannot stat it", pid, fd);
  // The names the kernel gives sockets, unnamed pipes and eventfds, without asking it
  // (most fds of a large table are of these kinds).
  if (!(flags & O_PATH) && S_ISSOCK(st.st_mode))
    link = fmt::format("socket:[{}]", st.st_ino);
  else if (!(flags & O_PATH) && S_ISFIFO(st.st_mode) && st.st_dev == pipefs_dev())
    link = fmt::format("pipe:[{}]", st.st_ino);
  else if (object_id && fdinfo.find("\neventfd-count:") != std::string::npos)
    link = "anon_inode:[eventfd]";
  else
    link = read_link_at(source_.fd_dir(), name.s, pid, fd);
}

void FdContext::reread_fdinfo() {
  fdinfo = read_fdinfo_at(source_, FdName(fd).s, fd);
  try {
    info = proc::parse_fdinfo(fdinfo);
  } catch (const Error& e) {
    fail("task {} fd {}: cannot parse /proc/{}/fdinfo/{}: {}", pid, fd, pid, fd, e.what());
  }
  flags = info.flags & ~static_cast<uint32_t>(O_CLOEXEC);
}

int FdContext::copy() {
  if (!copy_) copy_ = source_.steal(fd, link.empty() ? "file" : link.c_str());
  return copy_.get();
}

Fd FdContext::reopen(int open_flags) {
  return Fd(::openat(source_.fd_dir(), FdName(fd).s, open_flags));
}

Fd FdContext::take_copy() {
  copy();
  return std::move(copy_);
}

int FdContext::socket_domain() {
  if (domain_ >= 0) return domain_;
  if (!S_ISSOCK(st.st_mode)) return domain_ = 0;
  int domain = 0;
  socklen_t len = sizeof domain;
  if (::getsockopt(copy(), SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
    fail_sys("{}: cannot read its address family", where());
  return domain_ = domain;
}

uint32_t FdContext::link_inode() const {
  size_t b = link.find('[');
  if (b == std::string::npos) fail("{}: no inode number in its name", where());
  return static_cast<uint32_t>(std::stoull(link.substr(b + 1)));
}

std::string FdContext::where() const {
  if (link.empty()) return fmt::format("task {} fd {}", pid, fd);
  return fmt::format("task {} fd {} ({})", pid, fd, link);
}

// The kinds' factories, each in its kind's file.
std::unique_ptr<FileKind> make_pipe_kind(FileTable& t);
std::unique_ptr<FileKind> make_fifo_kind(FileTable& t);
std::unique_ptr<FileKind> make_unix_socket_kind(FileTable& t);
std::unique_ptr<FileKind> make_inet_socket_kind(FileTable& t);
std::unique_ptr<FileKind> make_packet_socket_kind(FileTable& t);
std::unique_ptr<FileKind> make_netlink_socket_kind(FileTable& t);
std::unique_ptr<FileKind> make_eventfd_kind(FileTable& t);
std::unique_ptr<FileKind> make_timerfd_kind(FileTable& t);
std::unique_ptr<FileKind> make_signalfd_kind(FileTable& t);
std::unique_ptr<FileKind> make_eventpoll_kind(FileTable& t);
std::unique_ptr<FileKind> make_inotify_kind(FileTable& t);
std::unique_ptr<FileKind> make_fanotify_kind(FileTable& t);
std::unique_ptr<FileKind> make_memfd_kind(FileTable& t);
std::unique_ptr<FileKind> make_tty_kind(FileTable& t);
std::unique_ptr<FileKind> make_regular_kind(FileTable& t);
std::unique_ptr<FileKind> make_path_kind(FileTable& t);
std::unique_ptr<FileKind> make_pidfd_kind(FileTable& t);
std::unique_ptr<FileKind> make_nsfs_kind(FileTable& t);

FileKinds make_file_kinds(FileTable& t) {
  FileKinds k;
  k.push_back(make_path_kind(t));  // first: an O_PATH fd opens nothing of the object
  k.push_back(make_pipe_kind(t));
  k.push_back(make_unix_socket_kind(t));
  k.push_back(make_inet_socket_kind(t));
  k.push_back(make_packet_socket_kind(t));
  k.push_back(make_netlink_socket_kind(t));
  k.push_back(make_eventfd_kind(t));
  k.push_back(make_timerfd_kind(t));
  k.push_back(make_signalfd_kind(t));
  k.push_back(make_eventpoll_kind(t));
  k.push_back(make_inotify_kind(t));
  k.push_back(make_fanotify_kind(t));
  k.push_back(make_fifo_kind(t));
  k.push_back(make_memfd_kind(t));
  k.push_back(make_pidfd_kind(t));
  k.push_back(make_nsfs_kind(t));
  k.push_back(make_tty_kind(t));
  k.push_back(make_regular_kind(t));  // last: any other file with a path
  return k;
}

}  // namespace cryo::dump
