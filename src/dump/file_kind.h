// The kinds of open files a dump knows. Each kind (pipes, unix sockets, eventfds, ...) is a
// FileKind: it says which fds are its own and fills their files.img entry, and may keep
// state across the tree to write images of its own at the end. FileTable gathers an
// FdContext for every fd, finds which fds are one open file, and hands the first fd of each
// open file to the kind that claims it. Adding a kind: a class in dump/KIND.cc and one line
// in the registry (file_kind.cc); its restore twin is restore/file_kind.h.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/fd.h"
#include "image/fdinfo.h"
#include "infect/fd_transfer.h"
#include "proc/proc.h"

namespace cryo::dump {

class FileTable;

// Everything cryo reads about one fd of a task, gathered once: kinds never read it again.
// Read in two steps, because most of the cost is per fd: the fdinfo first (enough to find
// whether an earlier fd was on the same open file), the rest only for the first fd of an
// open file, which a kind then dumps.
class FdContext {
 public:
  // Reads the fdinfo of fd `fd` of the task behind `source`. Throws naming the task and fd.
  FdContext(FdSource& source, int fd);
  // Reads the rest: link, stat (of cryo's copy of the open file, taken now). Throws.
  void describe();
  pid_t pid;
  int fd;
  std::string proc_path;   // /proc/PID/fd/N: opens or stats the file itself
  std::string fdinfo;      // the text of /proc/PID/fdinfo/N
  proc::FdInfo info;       // and parsed
  uint32_t flags;          // the open file's status flags, without O_CLOEXEC
  uint64_t object_id = 0;  // what tells objects on one inode apart (eventfd-id), else 0
  // Set by describe():
  std::string link;   // what /proc/PID/fd/N says it is
  struct stat st {};  // of the file the fd is open on

  // cryo's own copy of the open file (the same open file, not a reopen), taken once.
  int copy();
  // The copy, for a kind that keeps it past this fd.
  Fd take_copy();
  // A new open file on the same object, opened through /proc/PID/fd/N with `flags` (as a
  // FIFO's name would open it); invalid with errno set when it cannot be opened.
  Fd reopen(int flags);
  // Reads the fdinfo again, after an action on the copy changed it (timerfd_gettime).
  void reread_fdinfo();
  // The socket's address family (AF_UNIX, AF_INET, ...); 0 for a non-socket.
  int socket_domain();
  // The inode number /proc shows in "pipe:[N]" or "socket:[N]".
  uint32_t link_inode() const;
  // "task P fd N (link)", for messages.
  std::string where() const;

 private:
  FdSource& source_;
  Fd copy_;
  int domain_ = -1;
};

// What a kind writes at the end needs to know of the dump.
struct DumpEnd {
  std::string dir;
  bool shell_job = false;
  bool ext_unix_sk = false;
  std::function<bool(pid_t)> in_tree;
};

class FileKind {
 public:
  virtual ~FileKind() = default;
  // The files.img type of this kind's entries.
  virtual fd_types type() const = 0;
  // True when this kind dumps `c` (kinds are asked in registry order). A kind may refuse an
  // fd it claims, with a message that says why.
  virtual bool claims(FdContext& c) = 0;
  // Fills `e` (id and type set) for the first fd seen of an open file.
  virtual void dump(FdContext& c, uint32_t id, file_entry* e) = 0;
  // Once every task is dumped: checks across the tree, entries for objects outside it.
  virtual void finish(FileTable& /*table*/, const DumpEnd& /*end*/) {}
  // Writes the kind's own images (pipe data, socket queues, ...).
  virtual void write(const DumpEnd& /*end*/) {}
};

using FileKinds = std::vector<std::unique_ptr<FileKind>>;

// Every kind, in the order they are asked to claim an fd.
FileKinds make_file_kinds(FileTable& table);

}  // namespace cryo::dump
