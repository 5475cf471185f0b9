#include "restore/file_kind.h"

namespace cryo::restore {

// The kinds' factories, each in its kind's file.
std::unique_ptr<FileKind> make_regular_kind();
std::unique_ptr<FileKind> make_memfd_kind();
std::unique_ptr<FileKind> make_pipe_kind();
std::unique_ptr<FileKind> make_fifo_kind();
std::unique_ptr<FileKind> make_tty_kind();
std::unique_ptr<FileKind> make_unix_socket_kind();
std::unique_ptr<FileKind> make_inet_socket_kind();
std::unique_ptr<FileKind> make_packet_socket_kind();
std::unique_ptr<FileKind> make_netlink_socket_kind();
std::unique_ptr<FileKind> make_eventfd_kind();
std::unique_ptr<FileKind> make_timerfd_kind();
std::unique_ptr<FileKind> make_signalfd_kind();
std::unique_ptr<FileKind> make_eventpoll_kind();
std::unique_ptr<FileKind> make_inotify_kind();
std::unique_ptr<FileKind> make_fanotify_kind();
std::unique_ptr<FileKind> make_pidfd_kind();
std::unique_ptr<FileKind> make_nsfs_kind();

FileKinds make_file_kinds() {
  FileKinds kinds;
  for (auto* make : {make_regular_kind, make_memfd_kind, make_pipe_kind, make_fifo_kind,
                     make_tty_kind, make_unix_socket_kind, make_inet_socket_kind,
                     make_packet_socket_kind, make_netlink_socket_kind, make_eventfd_kind,
                     make_timerfd_kind, make_signalfd_kind, make_eventpoll_kind, make_inotify_kind,
                     make_fanotify_kind, make_pidfd_kind, make_nsfs_kind}) {
    std::unique_ptr<FileKind> k = make();
    const int type = k->type();
    kinds[type] = std::move(k);
  }
  return kinds;
}

}  // namespace cryo::restore
