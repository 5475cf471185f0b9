// Unix sockets: state from sock_diag and from a copy of the socket (pidfd_getfd); queued
// data read with MSG_PEEK, without consuming it, into sk-queues.img.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "dump/file_kind.h"
#include "image/fdinfo.h"
#include "kernel/sock_diag.h"
#include "sk-opts.pb.h"
#include "sk-packet.pb.h"

namespace cryo::dump {

// Socket options every kind shares; an int option (0 when it cannot be read).
void fill_sk_opts(int s, sk_opts_entry* o);
int sk_int_opt(int s, int level, int name);

class FileTable;

class UnixSockets {
 public:
  // `table` dumps the files messages carry (SCM_RIGHTS).
  explicit UnixSockets(FileTable* table) : table_(table) {}
  // Fills e->usk for fd `c`, an AF_UNIX socket, and saves its queue.
  void dump(FdContext& c, uint32_t id, file_entry* e);
  // Checks every connection once all tasks are dumped: each peer must be in the tree or, with
  // ext_unix_sk, be a named datagram socket outside it. Returns the entries (flagged
  // image::kUskExtern) of those outside sockets, with ids from new_id.
  std::vector<file_entry> finish(bool ext_unix_sk, const std::function<uint32_t()>& new_id,
                                 const std::function<bool(pid_t)>& in_tree);
  void write(const std::string& dir);

 private:
  struct Where {
    pid_t pid;
    int fd;
    uint32_t id;
    bool queued;  // data or messages saved in sk-queues.img
  };
  std::string describe(uint32_t ino) const;
  void resolve_name(FdContext& c, unix_sk_entry* u);
  std::map<uint32_t, kernel::UnixDiag> diag_;
  bool loaded_ = false;
  std::map<uint32_t, Where> dumped_;  // by inode
  struct Packet {
    sk_packet_entry entry;
    std::string data;
  };
  std::vector<Packet> queues_;
  std::string peek_buf_;
  FileTable* table_;
  FdSource self_{::getpid()};  // cryo itself, holding the fds messages carry
  std::vector<Fd> held_;       // those fds, open until the dump is written
  struct Sender {
    pid_t pid;   // who sent a message with credentials
    pid_t task;  // and where it waits
    int fd;
    uint32_t ino;
  };
  std::vector<Sender> senders_;
};

}  // namespace cryo::dump
