// Thin typed wrappers over raw syscalls and ptrace requests that glibc does not wrap.
#pragma once

#include <linux/sched.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>

#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

namespace cryo::kernel {

// struct clone_args of clone3(2), with set_tid (Linux 5.5+).
struct CloneArgs {
  uint64_t flags;
  uint64_t pidfd;
  uint64_t child_tid;
  uint64_t parent_tid;
  uint64_t exit_signal;
  uint64_t stack;
  uint64_t stack_size;
  uint64_t tls;
  uint64_t set_tid;
  uint64_t set_tid_size;
  uint64_t cgroup;
};

struct RseqConfig {
  uint64_t rseq_abi_pointer;
  uint32_t rseq_abi_size;
  uint32_t signature;
  uint32_t flags;
  uint32_t pad;
};

// struct rseq_cs: a restartable sequence's critical section, as the task describes it.
struct RseqCs {
  uint32_t version;
  uint32_t flags;
  uint64_t start_ip;
  uint64_t post_commit_offset;
  uint64_t abort_ip;
};
// Offset of the rseq_cs pointer in struct rseq.
constexpr uint64_t kRseqCsOffset = 8;

// Where a thread stopped at `ip` must go on: a thread inside a critical section was cut in
// the middle of it and must restart at the section's abort handler, as the kernel would
// have made it on its next return to user space.
inline uint64_t rseq_resume_ip(uint64_t ip, const RseqCs& cs) {
  if (ip >= cs.start_ip && ip - cs.start_ip < cs.post_commit_offset) return cs.abort_ip;
  return ip;
}

// membarrier(2): each MEMBARRIER_CMD_REGISTER_* command is its barrier command shifted left by
// one (global expedited, private expedited, its sync-core and rseq kinds), and
// MEMBARRIER_CMD_GET_REGISTRATIONS (Linux 6.3) returns the mask of those registered.
constexpr uint32_t kMembarrierRegisterCmds[] = {1u << 2, 1u << 4, 1u << 6, 1u << 8};
constexpr uint32_t kMembarrierGetRegistrations = 1u << 9;

// The kernel's struct sigaction layout for rt_sigaction(2) on x86_64.
struct KernelSigaction {
  uint64_t handler;
  uint64_t flags;
  uint64_t restorer;
  uint64_t mask;
};

// struct prctl_mm_map for PR_SET_MM_MAP.
struct PrctlMmMap {
  uint64_t start_code, end_code, start_data, end_data;
  uint64_t start_brk, brk, start_stack;
  uint64_t arg_start, arg_end, env_start, env_end;
  uint64_t auxv;
  uint32_t auxv_size;
  uint32_t exe_fd;
};

enum KcmpType {
  kKcmpFile = 0,
  kKcmpVm = 1,
  kKcmpFiles = 2,
  kKcmpFs = 3,
  kKcmpSighand = 4,
  kKcmpEpollTfd = 7,
};
// For kKcmpEpollTfd: a file registered in epoll `efd` under fd number `tfd` (the toff-th).
struct KcmpEpollSlot {
  uint32_t efd, tfd, toff;
};

inline long kcmp(pid_t a, pid_t b, int type, unsigned long x, unsigned long y) {
  return ::syscall(SYS_kcmp, a, b, type, x, y);
}
inline long clone3(CloneArgs* args) {
  return ::syscall(SYS_clone3, args, sizeof(*args));
}
inline long gettid_raw() {
  return ::syscall(SYS_gettid);
}
inline int pidfd_open(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}
inline int pidfd_getfd(int pidfd, int fd) {
  return static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, fd, 0));
}
// Frees the memory of a process that is being killed, in the caller (Linux 5.15).
inline int process_mrelease(int pidfd) {
  return static_cast<int>(::syscall(SYS_process_mrelease, pidfd, 0));
}

// Rounds to pages.
constexpr uint64_t kPageSize = 4096;
constexpr uint64_t page_down(uint64_t a) {
  return a & ~(kPageSize - 1);
}
constexpr uint64_t page_up(uint64_t a) {
  return (a + kPageSize - 1) & ~(kPageSize - 1);
}

// Bits of a /proc/PID/pagemap entry.
constexpr uint64_t kPmPresent = 1ULL << 63, kPmSwap = 1ULL << 62, kPmFile = 1ULL << 61;
constexpr uint64_t kPmExclusive = 1ULL << 56;  // mapped by this process alone
constexpr uint64_t kPmPfnMask = (1ULL << 55) - 1;

}  // namespace cryo::kernel
