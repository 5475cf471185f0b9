// The files.img / fdinfo schema. <signal.h> defines a sigmask() macro that would break the
// generated signalfd_entry::sigmask(): take it in first and drop the macro.
#pragma once

#include <signal.h>
#undef sigmask

#include <sched.h>

#include <cstdint>
#include <string_view>

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

// ns_file_entry.ns_cflag: which kind of namespace, as its CLONE_NEW* flag; the name /proc
// gives it (/proc/PID/ns/NAME, "NAME:[inode]"). 0 and "" for none.
constexpr uint32_t kCloneNewTime = 0x80;  // CLONE_NEWTIME, missing from older headers
constexpr struct {
  std::string_view name;
  uint32_t cflag;
} kNamespaces[] = {
    {"net", CLONE_NEWNET},       {"uts", CLONE_NEWUTS},   {"ipc", CLONE_NEWIPC},
    {"pid", CLONE_NEWPID},       {"mnt", CLONE_NEWNS},    {"user", CLONE_NEWUSER},
    {"cgroup", CLONE_NEWCGROUP}, {"time", kCloneNewTime},
};
constexpr uint32_t ns_cflag(std::string_view name) {
  for (const auto& n : kNamespaces)
    if (n.name == name) return n.cflag;
  return 0;
}
constexpr std::string_view ns_name(uint32_t cflag) {
  for (const auto& n : kNamespaces)
    if (n.cflag == cflag) return n.name;
  return "";
}

}  // namespace cryo::image
