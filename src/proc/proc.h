// Parsers of /proc/PID/* files. Each parse_* function takes the file's text so it can be
// unit-tested on fixed samples; each read_* function reads the live file for a PID (or
// PID/task/TID) and throws cryo::Error naming the file and the errno text when it cannot.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cryo::proc {

// /proc/PID/stat (man 5 proc). comm may contain spaces and ')'.
struct Stat {
  pid_t pid = 0;
  std::string comm;
  char state = '?';
  pid_t ppid = 0, pgrp = 0, session = 0;
  int tty_nr = 0;
  pid_t tpgid = 0;
  uint64_t flags = 0;
  int64_t priority = 0, nice = 0;
  int64_t num_threads = 0;
  uint64_t starttime = 0;
  uint64_t startcode = 0, endcode = 0, startstack = 0;
  uint32_t exit_signal = 0;
  uint32_t rt_priority = 0, policy = 0;
  uint64_t start_data = 0, end_data = 0, start_brk = 0;
  uint64_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;
  int exit_code = 0;  // field 52: the wait status of a zombie
};
Stat parse_stat(const std::string& text);
Stat read_stat(pid_t pid);
// "state D, waiting in WCHAN" of a task, for messages about a task that does not respond.
std::string describe_state(pid_t tid);

// PF_IO_WORKER in Stat::flags: an io_uring kernel thread (iou-sqp-*, iou-wrk-*) listed among a
// process's threads. It never returns to user space, so it can neither stop nor be dumped.
constexpr uint64_t kPfIoWorker = 0x10;
// True if /proc/PID/task/TID is an io_uring worker; false if it is not, or is gone.
bool is_io_worker(pid_t pid, pid_t tid);

// /proc/PID/status, the fields cryo uses.
struct Status {
  std::string name;
  char state = '?';
  pid_t tgid = 0, pid = 0, ppid = 0, tracer_pid = 0;
  uint32_t umask = 022;
  uint32_t uid[4] = {}, gid[4] = {};  // real, effective, saved, fs
  std::vector<uint32_t> groups;
  std::vector<pid_t> nstgid;  // NStgid: one entry per pid namespace level
  int threads = 1;
  uint64_t sig_pnd = 0, shd_pnd = 0, sig_blk = 0, sig_ign = 0, sig_cgt = 0;
  uint64_t cap_inh = 0, cap_prm = 0, cap_eff = 0, cap_bnd = 0, cap_amb = 0;
  int no_new_privs = 0;
  int seccomp = 0;
};
Status parse_status(const std::string& text);
Status read_status(pid_t pid);

// One VMA from /proc/PID/smaps, with its VmFlags.
struct Vma {
  uint64_t start = 0, end = 0;
  bool r = false, w = false, x = false, shared = false;  // "rwxs" / "rwxp"
  uint64_t pgoff = 0;
  uint32_t dev_major = 0, dev_minor = 0;
  uint64_t inode = 0;
  std::string
      path;  // as shown: "/usr/bin/cat", "[heap]", "[vdso]", "" for anon, may end in " (deleted)"
  std::vector<std::string> vm_flags;  // two-letter VmFlags: "rd", "wr", "gd", "dd", ...
  uint64_t rss_kb = 0, swap_kb = 0;
  bool has_flag(const char* f) const;
  uint64_t size() const { return end - start; }
};
std::vector<Vma> parse_smaps(const std::string& text);
std::vector<Vma> read_smaps(pid_t pid);
// /proc/PID/maps has the same first lines without the details; used where smaps is too slow.
std::vector<Vma> parse_maps(const std::string& text);
std::vector<Vma> read_maps(pid_t pid);

// One line of /proc/locks, or the part after "lock:" of a /proc/PID/fdinfo/FD line:
// "1: POSIX  ADVISORY  WRITE 1234 fe:00:5678 0 EOF", "2: -> FLOCK  ADVISORY  WRITE ...".
struct FileLock {
  bool blocked = false;  // "->": a request waiting for the lock listed before it
  std::string kind;      // POSIX, FLOCK, OFDLCK, LEASE, DELEG, ACCESS, UNKNOWN
  std::string mode;      // ADVISORY for POSIX/flock/OFD; ACTIVE, BREAKING, BREAKER for leases
  std::string type;      // READ, WRITE, UNLCK
  pid_t pid = 0;         // who took it; -1 for OFD locks
  uint32_t dev_major = 0, dev_minor = 0;  // the inode's superblock device (hex in the file)
  uint64_t ino = 0;                       // 0 when the kernel shows "<none>"
  int64_t start = 0;
  int64_t end = -1;  // inclusive; -1 for "EOF" (to the end of the file, and beyond)
};
FileLock parse_lock_line(const std::string& line);
std::vector<FileLock> parse_locks(const std::string& text);
std::vector<FileLock> read_locks();  // /proc/locks

// /proc/PID/fdinfo/FD, the common fields and the locks of the open file.
struct FdInfo {
  uint64_t pos = 0;
  uint32_t flags = 0;  // octal in the file
  int mnt_id = -1;
  uint64_t ino = 0;
  std::vector<FileLock> locks;  // "lock:" lines
};
FdInfo parse_fdinfo(const std::string& text);
FdInfo read_fdinfo(pid_t pid, int fd);

// /proc/PID/limits: 16 rows (RLIMIT_CPU .. RLIMIT_RTTIME in kernel order), "unlimited" as
// RLIM_INFINITY.
struct Limit {
  uint64_t cur = 0, max = 0;
};
std::vector<Limit> parse_limits(const std::string& text);
std::vector<Limit> read_limits(pid_t pid);

// /proc/PID/timens_offsets: the clock offsets of the time namespace PID's next children are
// born in (its time_for_children), in nanoseconds from the initial namespace's clocks.
struct TimensOffsets {
  int64_t monotonic_ns = 0, boottime_ns = 0;
};
TimensOffsets parse_timens_offsets(const std::string& text);
TimensOffsets read_timens_offsets(pid_t pid);

// Small helpers.
std::string read_file(const std::string& path);                     // whole file; throws on error
std::optional<std::string> try_read_file(const std::string& path);  // nullopt if absent
std::string read_link(const std::string& path);                     // readlink; throws on error
std::vector<int> list_dir_numbers(const std::string& path);
// "held by task PID (comm) fd N" for socket inode `ino`, from a scan of /proc/*/fd.
std::string socket_holder(uint32_t ino);                 // numeric entries, sorted
std::vector<pid_t> read_children(pid_t pid, pid_t tid);  // /proc/PID/task/TID/children
std::vector<pid_t> read_threads(pid_t pid);              // /proc/PID/task, sorted

}  // namespace cryo::proc
