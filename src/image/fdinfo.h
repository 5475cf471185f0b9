// The files.img / fdinfo schema. <signal.h> defines a sigmask() macro that would break the
// generated signalfd_entry::sigmask(): take it in first and drop the macro.
#pragma once

#include <signal.h>
#undef sigmask

#include "fdinfo.pb.h"

namespace cryo::image {

// unix_sk_entry.uflags: a socket outside the dumped tree that a socket of the tree is connected
// to (--ext-unix-sk); it has no fd, only its name to connect to again (CRIU's USK_EXTERN).
constexpr uint32_t kUskExtern = 1;

// Socket states in unix_sk_entry.state and inet_sk_entry.state: the kernel's TCP_* numbers,
// which unix sockets use too.
constexpr uint32_t kSkEstablished = 1;  // TCP_ESTABLISHED: connected
constexpr uint32_t kSkClose = 7;        // TCP_CLOSE: not connected
constexpr uint32_t kSkListen = 10;      // TCP_LISTEN

// file_lock_entry.flag: the kind of lock (the kernel's FL_* bits).
constexpr uint32_t kLockPosix = 1, kLockFlock = 2, kLockOfd = 4;

// tty_info_entry.id of a pty's ends: the pty index, and the low bit set for the master.
constexpr uint32_t pty_master_id(uint32_t index) {
  return index << 1 | 1;
}
constexpr uint32_t pty_slave_id(uint32_t index) {
  return index << 1;
}

}  // namespace cryo::image
