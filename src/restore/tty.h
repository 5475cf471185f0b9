// Terminals on restore. A pty pair of the tree is made again in cryo (its master gets the
// dumped index), set up (attributes, window size, queued bytes, locks, packet mode) and its
// ends are handed to the tasks like other files; the session that had its slave as
// controlling terminal gets it back. Any other terminal is the shell job's (--shell-job): the
// terminal cryo itself runs in.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>

#include "base/fd.h"
#include "infect/remote_task.h"
#include "restore/plan.h"

namespace cryo::restore {

// True when the TTY file `f` is an end of a pty pair dumped with the tree; false for the
// shell job's terminal.
bool tty_in_tree(const Plan& plan, const tty_file_entry& f);

class Ttys {
 public:
  explicit Ttys(const Plan& plan);
  // A new open file of cryo's for the TTY file `f`.
  Fd open(const tty_file_entry& f);
  // In session leader `rt`, just after its setsid and before it has children: its
  // controlling terminal, when that is a pty of the tree.
  void attach_ctty(RemoteTask& rt);
  // In session leader `rt`, once every group exists: the terminal's foreground group.
  void set_foreground(RemoteTask& rt);
  // Once every task holds its files: pty locks and exclusive mode, which would keep
  // cryo from opening the slaves.
  void finish();

 private:
  struct Pair {
    Fd master, slave;
  };
  Pair& pair(uint32_t index);
  const tty_info_entry* session_tty(pid_t sid) const;
  int remote_slave(RemoteTask& rt, const Pair& p, uint32_t index);
  const Plan& plan_;
  std::map<uint32_t, std::string> data_;  // queued bytes by the id of the tty that reads them
  std::map<uint32_t, Pair> pairs_;        // by pty index
};

}  // namespace cryo::restore
