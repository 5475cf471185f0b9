// Terminals of the dumped tree. A pty pair whose master is open in the tree is dumped whole:
// its state (termios, window size, locks, packet mode, controlling session and foreground
// group) in tty-info.img and the bytes queued in both directions in tty-data.img. Any other
// terminal is the shell job's (--shell-job): restore puts it on the terminal cryo runs in.
//
// Queued bytes: reading a terminal consumes them, so cryo reads them through copies of the
// tree's own files while it is frozen and puts them back at once (the tree then finds them
// whether the dump fails, kills it or leaves it running), with the line discipline's
// processing switched off so that nothing is echoed, translated or taken as a signal twice.
// What cannot be kept exactly:
// - canonical input loses its line marks when read; they are rebuilt from the newline, VEOL
//   and VEOL2 characters and from the NUL an end-of-file mark (^D) leaves in the queue. So a
//   NUL typed in canonical mode comes back as an end-of-file mark, and a line-end or EOF
//   character quoted with VLNEXT comes back as a line end;
// - in packet mode, a status change the master has not read yet is dropped;
// - output stopped by flow control (^S) and the echo column are not saved.
// Refused: unread bytes on a master whose slave no task of the tree holds (there is no fd to
// put them back through), and a pty that is the controlling terminal of a session whose
// leader is outside the tree. /dev/tty opened by name is the shell job's terminal.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <string>

#include "base/fd.h"
#include "dump/file_kind.h"
#include "image/fdinfo.h"
#include "tty.pb.h"

namespace cryo::dump {

// True for the major numbers of terminals: ttys, consoles, ptys.
bool is_tty_rdev(dev_t rdev);

class TtyTable {
 public:
  // Fills `e` (a TTY file entry, id `id`) for fd `c`, a terminal.
  void add(FdContext& c, uint32_t id, file_entry* e);
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
