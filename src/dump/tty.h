// Terminals of the dumped tree. A pty pair whose master is open in the tree is dumped whole:
// its state (termios, window size, locks, packet mode, controlling session and foreground
// group) in tty-info.img and the bytes queued in both directions in tty-data.img. Any other
// terminal is the shell job's (--shell-job): restore puts it on the terminal cryo runs in.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <string>

#include "base/fd.h"
#include "image/fdinfo.h"
#include "tty.pb.h"

namespace cryo::dump {

// True for the major numbers of terminals: ttys, consoles, ptys.
bool is_tty_rdev(dev_t rdev);

class TtyTable {
 public:
  // Fills `e` (a TTY file entry, id `id`) for fd `fd` of task `pid`, a terminal `link`.
  void add(pid_t pid, int fd, const std::string& link, const struct stat& st, uint32_t id,
           uint32_t flags, file_entry* e);
  // True when a terminal fd is not part of a pty pair of the tree: a shell job's terminal.
  bool has_external() const;
  // Reads the state and the queued bytes of every pty pair (the bytes are put back at once,
  // the tree must be frozen), writes tty-info.img and tty-data.img and drops cryo's copies.
  // `in_tree` says whether a PID is a task of the dumped tree.
  void write(const std::string& dir, bool shell_job, const std::function<bool(pid_t)>& in_tree);

 private:
  struct End {
    pid_t pid = 0;
    int fd = -1;
    std::string link;
    struct stat st {};
    Fd copy;  // cryo's copy of the task's open file
  };
  struct Pty {
    End master, slave;
  };
  std::map<uint32_t, Pty> ptys_;                  // by pty index
  std::map<uint32_t, tty_info_entry> others_;     // other terminals, by tty info id
  std::map<uint32_t, std::string> other_holder_;  // "task P fd N (link)" for the refusal
};

}  // namespace cryo::dump
