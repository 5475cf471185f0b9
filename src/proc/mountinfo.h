// /proc/PID/mountinfo: one Mount per line (see proc(5)).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cryo::proc {

struct Mount {
  uint32_t id = 0, parent = 0;
  uint32_t major = 0, minor = 0;
  std::string root;        // the mounted directory inside its file system
  std::string mountpoint;  // from the reader's root (octal escapes undone)
  std::string mount_opts;  // per-mount: rw,nosuid,relatime...
  uint32_t shared = 0;     // peer group (shared:N), 0 when none
  uint32_t master = 0;     // master:N, 0 when none
  std::string fstype;      // "tmpfs", "fuse.sshfs" ...
  std::string source;
  std::string super_opts;  // the superblock's: rw,size=...,mode=...
};

// Parses mountinfo text; throws naming the line that does not parse.
std::vector<Mount> parse_mountinfo(const std::string& text);
std::vector<Mount> read_mountinfo(pid_t pid);

}  // namespace cryo::proc
