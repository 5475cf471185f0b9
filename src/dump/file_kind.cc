#include "dump/file_kind.h"

#include <fcntl.h>
#include <sys/socket.h>

#include "base/error.h"

namespace cryo::dump {

FdContext::FdContext(FdSource& source, int fd_num)
    : pid(source.pid()), fd(fd_num), source_(source) {
  proc_path = fmt::format("/proc/{}/fd/{}", pid, fd);
  link = proc::read_link(proc_path);
  if (::stat(proc_path.c_str(), &st) < 0) fail_sys("task {} fd {}: cannot stat {}", pid, fd, link);
  reread_fdinfo();
}

void FdContext::reread_fdinfo() {
  fdinfo = proc::read_file(fmt::format("/proc/{}/fdinfo/{}", pid, fd));
  info = proc::parse_fdinfo(fdinfo);
  flags = info.flags & ~static_cast<uint32_t>(O_CLOEXEC);
}

int FdContext::copy() {
  if (!copy_) copy_ = source_.steal(fd, link.c_str());
  return copy_.get();
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
