// Unix sockets, created in cryo and handed to the tasks like every file (see FileSet):
// pairs connected to each other become socketpairs, listeners are bound and listen again,
// connections waiting in a backlog connect again, datagram sockets reconnect to their peer;
// queued data is sent back into each socket's receive queue.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <functional>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/fd.h"
#include "restore/plan.h"

namespace cryo::restore {

// Socket options every kind shares: buffer sizes, timeouts and the boolean ones.
void apply_sk_opts(int fd, const sk_opts_entry& o, uint32_t id);

class UnixSockets {
 public:
  // `get` returns cryo's fd on a file id (creating it); `adopt` hands over the other end of a
  // socketpair as the fd of a file id.
  UnixSockets(const Plan& plan, std::function<int(uint32_t)> get,
              std::function<void(uint32_t, Fd)> adopt);
  // Removes the socket files it bound, unless keep() was called (the restore succeeded).
  ~UnixSockets();
  Fd open(const file_entry& f);
  void keep() { bound_.clear(); }

 private:
  const unix_sk_entry* by_ino(uint32_t ino) const;
  // Puts u's saved queue back, sent from `sender` (to `dest` when given).
  void fill(const unix_sk_entry& u, int sender, const unix_sk_entry* dest = nullptr);
  void bind(int fd, const unix_sk_entry& u);
  void connect(int fd, const unix_sk_entry& to, uint32_t id, const char* hint = "");
  sockaddr_un reach(const unix_sk_entry& to, socklen_t* len) const;
  std::map<uint32_t, Fd> ghosts_;  // O_PATH fds on the files of sockets bound to a deleted file
  std::set<uint32_t> filling_;     // sockets whose queues are being filled
  struct Bound {
    std::string path;
    dev_t dev;
    ino_t ino;
  };
  std::vector<Bound> bound_;  // socket files made by this restore
  const Plan& plan_;
  std::function<int(uint32_t)> get_;
  std::function<void(uint32_t, Fd)> adopt_;
  std::map<uint32_t, const unix_sk_entry*> inos_;
};

}  // namespace cryo::restore
