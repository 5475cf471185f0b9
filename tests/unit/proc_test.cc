// Unit tests of the /proc parsers: fixed samples, then live checks on this process.
#include "proc/proc.h"
#include "proc/mountinfo.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/error.h"
#include "dump/cgroups.h"
#include "proc/cgroups.h"

namespace cryo::proc {
namespace {

// Fields 3..52 of a real stat line (cat, Linux 6.x), after "PID (COMM) ".
const char kStatTail[] =
    "R 3154 3154 2469 34816 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 74415 3133440 392 "
    "18446744073709551615 94504257441792 94504257461673 140735959857456 0 0 0 0 0 0 0 0 0 "
    "17 1 0 0 0 0 0 94504257477680 94504257479296 94505328402432 140735959865984 "
    "140735959866004 140735959866004 140735959867371 0\n";

// An io_uring worker thread as /proc/PID/task/TID/stat shows it (kernel 6.18): PF_IO_WORKER is
// set in flags, next to PF_FORKNOEXEC and PF_RANDOMIZE of its user thread.
TEST(ParseStat, IoWorkerFlag) {
  Stat user = parse_stat(
      "31178 (iou) S 1 31173 4071 0 -1 4194560 120 0 0 0 0 0 0 0 20 0 2 0 130389 2490368 340 "
      "18446744073709551615 94336273469440 94336273473869 140727416065936 0 0 0 0 518 0 1 0 0 "
      "17 1 0 0 0 0 0 94336273485264 94336273486016 94336601587712 140727416068542 "
      "140727416068578 140727416068578 140727416070127 0\n");
  Stat worker = parse_stat(
      "31180 (iou-wrk-31178) S 1 31173 4071 0 -1 4210768 0 0 0 0 0 0 0 0 20 0 2 0 130389 "
      "2490368 340 18446744073709551615 94336273469440 94336273473869 140727416065936 0 0 0 "
      "2147221247 518 0 1 0 0 -1 0 0 0 0 0 0 94336273485264 94336273486016 94336601587712 "
      "140727416068542 140727416068578 140727416068578 140727416070127 0\n");
  EXPECT_EQ(user.flags & kPfIoWorker, 0u);
  EXPECT_EQ(worker.flags & kPfIoWorker, kPfIoWorker);
  EXPECT_EQ(worker.comm, "iou-wrk-31178");
}

TEST(ParseStat, CommWithSpacesAndParens) {
  Stat s = parse_stat(std::string("3165 ((a) b)) ") + kStatTail);
  EXPECT_EQ(s.pid, 3165);
  EXPECT_EQ(s.comm, "(a) b)");
  EXPECT_EQ(s.state, 'R');
  EXPECT_EQ(s.ppid, 3154);
  EXPECT_EQ(s.pgrp, 3154);
  EXPECT_EQ(s.session, 2469);
  EXPECT_EQ(s.tty_nr, 34816);
  EXPECT_EQ(s.tpgid, -1);
  EXPECT_EQ(s.flags, 4194304u);
  EXPECT_EQ(s.priority, 20);
  EXPECT_EQ(s.nice, 0);
  EXPECT_EQ(s.num_threads, 1);
  EXPECT_EQ(s.starttime, 74415u);
  EXPECT_EQ(s.startcode, 94504257441792u);
  EXPECT_EQ(s.endcode, 94504257461673u);
  EXPECT_EQ(s.startstack, 140735959857456u);
  EXPECT_EQ(s.exit_signal, 17u);
  EXPECT_EQ(s.rt_priority, 0u);
  EXPECT_EQ(s.policy, 0u);
  EXPECT_EQ(s.start_data, 94504257477680u);
  EXPECT_EQ(s.end_data, 94504257479296u);
  EXPECT_EQ(s.start_brk, 94505328402432u);
  EXPECT_EQ(s.arg_start, 140735959865984u);
  EXPECT_EQ(s.arg_end, 140735959866004u);
  EXPECT_EQ(s.env_start, 140735959866004u);
  EXPECT_EQ(s.env_end, 140735959867371u);
  EXPECT_EQ(s.exit_code, 0);
}

TEST(ParseStat, ZombieWithExitCode) {
  // A zombie: most fields 0, exit_code is the wait status (exit(3) -> 0x300).
  Stat s = parse_stat(
      "4242 (worker) Z 4200 4200 4100 0 -1 4227084 0 0 0 0 0 0 0 0 20 0 1 0 9000 0 0 "
      "18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 768\n");
  EXPECT_EQ(s.pid, 4242);
  EXPECT_EQ(s.comm, "worker");
  EXPECT_EQ(s.state, 'Z');
  EXPECT_EQ(s.ppid, 4200);
  EXPECT_EQ(s.exit_code, 768);
  EXPECT_TRUE(WIFEXITED(s.exit_code));
  EXPECT_EQ(WEXITSTATUS(s.exit_code), 3);
}

TEST(ParseStat, RealtimeThreadNegativeFields) {
  // SCHED_FIFO prio 50: priority -51; a non-leader thread has exit_signal -1.
  Stat s = parse_stat(
      "7 (rt thr) S 1 1 1 0 -1 1077936192 0 0 0 0 0 0 0 0 -51 0 2 0 100 0 0 "
      "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 -1 1 50 1 0 0 0 0 0 0 0 0 0 0 0\n");
  EXPECT_EQ(s.priority, -51);
  EXPECT_EQ(s.exit_signal, 0xffffffffu);
  EXPECT_EQ(s.rt_priority, 50u);
  EXPECT_EQ(s.policy, 1u);
  EXPECT_EQ(s.num_threads, 2);
}

TEST(ParseStat, OldKernelWithout45To52) {
  // 44 fields (Linux 2.6.24 .. 3.2): the later ones keep their defaults.
  Stat s = parse_stat(
      "9 (old) S 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 18446744073709551615 1 2 3 0 0 0 0 "
      "0 0 0 0 0 17 0 0 0 0 0 0");
  EXPECT_EQ(s.pid, 9);
  EXPECT_EQ(s.startstack, 3u);
  EXPECT_EQ(s.exit_signal, 17u);
  EXPECT_EQ(s.start_data, 0u);
  EXPECT_EQ(s.exit_code, 0);
}

TEST(ParseStat, Malformed) {
  EXPECT_THROW(parse_stat(""), Error);
  EXPECT_THROW(parse_stat("12 no comm here"), Error);
  EXPECT_THROW(parse_stat("12 (x) S 1 2 3"), Error);  // truncated
  EXPECT_THROW(parse_stat(std::string("x1 (a) ") + kStatTail), Error);
  std::string bad = std::string("1 (a) ") + kStatTail;
  bad.replace(bad.find(" 3154 "), 6, " 31x4 ");
  EXPECT_THROW(parse_stat(bad), Error);
}

const char kStatus[] =
    "Name:\tmy prog\n"
    "State:\tS (sleeping)\n"
    "Tgid:\t3160\n"
    "Ngid:\t0\n"
    "Pid:\t3161\n"
    "PPid:\t3154\n"
    "TracerPid:\t77\n"
    "Uid:\t1000\t1001\t1002\t1003\n"
    "Gid:\t100\t101\t102\t103\n"
    "FDSize:\t256\n"
    "Groups:\t \n"
    "NStgid:\t3160\t12\t1\n"
    "NSpid:\t3161\t13\t2\n"
    "VmPeak:\t    3060 kB\n"
    "Threads:\t3\n"
    "SigQ:\t0/96365\n"
    "SigPnd:\t0000000000000100\n"
    "ShdPnd:\t0000000000000200\n"
    "SigBlk:\t0000000000010000\n"
    "SigIgn:\t0000000000001000\n"
    "SigCgt:\t0000000180004002\n"
    "CapInh:\t0000000000000000\n"
    "CapPrm:\t000001fffeffffff\n"
    "CapEff:\t000001fffeffffff\n"
    "CapBnd:\t000001ffffffffff\n"
    "CapAmb:\t0000000000000001\n"
    "NoNewPrivs:\t1\n"
    "Seccomp:\t2\n"
    "Seccomp_filters:\t1\n"
    "Cpus_allowed_list:\t0-1\n";

TEST(ParseStatus, OldKernelEmptyGroupsNestedPidns) {
  Status s = parse_status(kStatus);
  EXPECT_EQ(s.name, "my prog");
  EXPECT_EQ(s.state, 'S');
  EXPECT_EQ(s.umask, 022u);  // no Umask line: default kept
  EXPECT_EQ(s.tgid, 3160);
  EXPECT_EQ(s.pid, 3161);
  EXPECT_EQ(s.ppid, 3154);
  EXPECT_EQ(s.tracer_pid, 77);
  EXPECT_EQ(s.uid[0], 1000u);
  EXPECT_EQ(s.uid[1], 1001u);
  EXPECT_EQ(s.uid[2], 1002u);
  EXPECT_EQ(s.uid[3], 1003u);
  EXPECT_EQ(s.gid[0], 100u);
  EXPECT_EQ(s.gid[3], 103u);
  EXPECT_TRUE(s.groups.empty());
  EXPECT_EQ(s.nstgid, (std::vector<pid_t>{3160, 12, 1}));
  EXPECT_EQ(s.threads, 3);
  EXPECT_EQ(s.sig_pnd, 0x100u);
  EXPECT_EQ(s.shd_pnd, 0x200u);
  EXPECT_EQ(s.sig_blk, 0x10000u);
  EXPECT_EQ(s.sig_ign, 0x1000u);
  EXPECT_EQ(s.sig_cgt, 0x180004002u);
  EXPECT_EQ(s.cap_inh, 0u);
  EXPECT_EQ(s.cap_prm, 0x1fffeffffffu);
  EXPECT_EQ(s.cap_eff, 0x1fffeffffffu);
  EXPECT_EQ(s.cap_bnd, 0x1ffffffffffu);
  EXPECT_EQ(s.cap_amb, 1u);
  EXPECT_EQ(s.no_new_privs, 1);
  EXPECT_EQ(s.seccomp, 2);
}

TEST(ParseTimensOffsets, NamesNumbersAndNegative) {
  TimensOffsets o =
      parse_timens_offsets("monotonic        1000         5\nboottime         -2        7\n");
  EXPECT_EQ(o.monotonic_ns, 1000000000005LL);
  EXPECT_EQ(o.boottime_ns, -2000000000LL + 7);
  o = parse_timens_offsets("1 3 0\n7 0 9\nbogus line\n");
  EXPECT_EQ(o.monotonic_ns, 3000000000LL);
  EXPECT_EQ(o.boottime_ns, 9);
  EXPECT_EQ(parse_timens_offsets("").monotonic_ns, 0);
}

TEST(ParseStatus, UmaskAndGroups) {
  std::string text = std::string("Name:\tx\nUmask:\t0077\n") + kStatus;
  text.replace(text.find("Groups:\t \n"), 10, "Groups:\t4 24 27 \n");
  text.replace(text.find("Name:\tmy prog\n"), 14, "");
  Status s = parse_status(text);
  EXPECT_EQ(s.name, "x");
  EXPECT_EQ(s.umask, 077u);
  EXPECT_EQ(s.groups, (std::vector<uint32_t>{4, 24, 27}));
}

TEST(ParseStatus, Malformed) {
  std::string text = kStatus;
  text.replace(text.find("1003"), 4, "");  // only 3 uids
  EXPECT_THROW(parse_status(text), Error);
  text = kStatus;
  text.replace(text.find("SigBlk:\t0"), 9, "SigBlk:\tz");
  EXPECT_THROW(parse_status(text), Error);
  EXPECT_THROW(parse_status("Foo:\t1\n"), Error);  // no Pid, Uid, ...
}

const char kSmaps[] =
    "55d8d1751000-55d8d1753000 r--p 00000000 fe:00 247498                     /usr/bin/head\n"
    "Size:                  8 kB\n"
    "KernelPageSize:        4 kB\n"
    "Rss:                   8 kB\n"
    "Pss:                   8 kB\n"
    "Swap:                  0 kB\n"
    "SwapPss:               0 kB\n"
    "VmFlags: rd mr mw me \n"
    "7f0000001000-7f0000003000 rw-s 0001a000 103:1a2 99                  /tmp/a dir/my  file\n"
    "Size:                  8 kB\n"
    "Rss:                   4 kB\n"
    "Swap:                 12 kB\n"
    "SwapPss:              99 kB\n"
    "VmFlags: rd wr sh mr mw me ms \n"
    "7f0000003000-7f0000008000 rw-p 00000000 00:00 0 \n"
    "Size:                 20 kB\n"
    "Rss:                 16 kB\n"
    "Swap:                  0 kB\n"
    "VmFlags: rd wr mr mw me ac \n"
    "7f0000010000-7f0000011000 r-xp 00002000 fe:01 1234                       /usr/lib/gone.so "
    "(deleted)\n"
    "Rss:                   4 kB\n"
    "VmFlags: rd ex mr mw me \n"
    "7fbbc574e000-7fbbc5750000 r-xp 00000000 00:00 0                          [vdso]\n"
    "Size:                  8 kB\n"
    "Rss:                   8 kB\n"
    "THPeligible:           0\n"
    "VmFlags: rd ex mr mw me de sd\n"
    "7ffd1294e000-7ffd1296f000 rw-p 00000000 00:00 0                          [stack]\n"
    "Rss:                  20 kB\n"
    "ProtectionKey:         0\n"
    "VmFlags: rd wr mr mw me gd ac";

TEST(ParseSmaps, Sample) {
  std::vector<Vma> v = parse_smaps(kSmaps);
  ASSERT_EQ(v.size(), 6u);

  EXPECT_EQ(v[0].start, 0x55d8d1751000u);
  EXPECT_EQ(v[0].end, 0x55d8d1753000u);
  EXPECT_EQ(v[0].size(), 0x2000u);
  EXPECT_TRUE(v[0].r);
  EXPECT_FALSE(v[0].w);
  EXPECT_FALSE(v[0].x);
  EXPECT_FALSE(v[0].shared);
  EXPECT_EQ(v[0].pgoff, 0u);
  EXPECT_EQ(v[0].dev_major, 0xfeu);
  EXPECT_EQ(v[0].dev_minor, 0u);
  EXPECT_EQ(v[0].inode, 247498u);
  EXPECT_EQ(v[0].path, "/usr/bin/head");
  EXPECT_EQ(v[0].rss_kb, 8u);
  EXPECT_EQ(v[0].swap_kb, 0u);
  EXPECT_EQ(v[0].vm_flags, (std::vector<std::string>{"rd", "mr", "mw", "me"}));

  // Path with spaces (kept, inner double space too), shared, big device numbers.
  EXPECT_EQ(v[1].path, "/tmp/a dir/my  file");
  EXPECT_TRUE(v[1].shared);
  EXPECT_TRUE(v[1].w);
  EXPECT_EQ(v[1].pgoff, 0x1a000u);
  EXPECT_EQ(v[1].dev_major, 0x103u);
  EXPECT_EQ(v[1].dev_minor, 0x1a2u);
  EXPECT_EQ(v[1].inode, 99u);
  EXPECT_EQ(v[1].rss_kb, 4u);
  EXPECT_EQ(v[1].swap_kb, 12u);  // not SwapPss
  EXPECT_TRUE(v[1].has_flag("sh"));
  EXPECT_FALSE(v[1].has_flag("gd"));

  // Anonymous: no path.
  EXPECT_EQ(v[2].path, "");
  EXPECT_EQ(v[2].inode, 0u);
  EXPECT_EQ(v[2].rss_kb, 16u);
  EXPECT_TRUE(v[2].has_flag("ac"));

  EXPECT_EQ(v[3].path, "/usr/lib/gone.so (deleted)");
  EXPECT_TRUE(v[3].x);
  EXPECT_EQ(v[3].pgoff, 0x2000u);
  EXPECT_EQ(v[3].dev_minor, 1u);

  EXPECT_EQ(v[4].path, "[vdso]");
  EXPECT_TRUE(v[4].has_flag("sd"));  // last flag without a trailing space
  EXPECT_EQ(v[4].vm_flags.size(), 7u);

  EXPECT_EQ(v[5].path, "[stack]");
  EXPECT_TRUE(v[5].has_flag("gd"));
  EXPECT_EQ(v[5].rss_kb, 20u);
}

TEST(ParseMaps, HeadersOnly) {
  std::vector<Vma> m = parse_maps(kSmaps);  // detail lines are skipped
  std::vector<Vma> s = parse_smaps(kSmaps);
  ASSERT_EQ(m.size(), s.size());
  for (size_t i = 0; i < m.size(); i++) {
    EXPECT_EQ(m[i].start, s[i].start);
    EXPECT_EQ(m[i].end, s[i].end);
    EXPECT_EQ(m[i].path, s[i].path);
    EXPECT_EQ(m[i].inode, s[i].inode);
    EXPECT_TRUE(m[i].vm_flags.empty());
    EXPECT_EQ(m[i].rss_kb, 0u);
  }
  EXPECT_TRUE(parse_maps("").empty());
}

TEST(ParseSmaps, Malformed) {
  EXPECT_THROW(parse_smaps("1000-2000 rw-p 0 fe00 1 /x\n"), Error);  // device
  EXPECT_THROW(parse_smaps("1000-2000 rw 0 fe:00 1 /x\n"), Error);   // perms
  EXPECT_THROW(parse_smaps("1000-2000 rw-p 0 fe:00\n"), Error);      // no inode
  EXPECT_THROW(parse_smaps("1000-2000 rw-p 0 0:0 0\nRss: lots kB\n"), Error);
}

const char kLimits[] =
    "Limit                     Soft Limit           Hard Limit           Units     \n"
    "Max cpu time              unlimited            unlimited            seconds   \n"
    "Max file size             unlimited            unlimited            bytes     \n"
    "Max data size             unlimited            unlimited            bytes     \n"
    "Max stack size            8388608              unlimited            bytes     \n"
    "Max core file size        0                    unlimited            bytes     \n"
    "Max resident set          unlimited            unlimited            bytes     \n"
    "Max processes             96365                96365                processes \n"
    "Max open files            1024                 524288               files     \n"
    "Max locked memory         8388608              8388608              bytes     \n"
    "Max address space         unlimited            unlimited            bytes     \n"
    "Max file locks            unlimited            unlimited            locks     \n"
    "Max pending signals       96365                96365                signals   \n"
    "Max msgqueue size         819200               819200               bytes     \n"
    "Max nice priority         0                    0                    \n"
    "Max realtime priority     0                    0                    \n"
    "Max realtime timeout      unlimited            unlimited            us        \n";

TEST(ParseLimits, Sample) {
  std::vector<Limit> l = parse_limits(kLimits);
  ASSERT_EQ(l.size(), 16u);
  constexpr uint64_t inf = ~0ULL;
  EXPECT_EQ(l[RLIMIT_CPU].cur, inf);
  EXPECT_EQ(l[RLIMIT_CPU].max, inf);
  EXPECT_EQ(l[RLIMIT_STACK].cur, 8388608u);
  EXPECT_EQ(l[RLIMIT_STACK].max, inf);
  EXPECT_EQ(l[RLIMIT_CORE].cur, 0u);
  EXPECT_EQ(l[RLIMIT_NPROC].cur, 96365u);
  EXPECT_EQ(l[RLIMIT_NOFILE].cur, 1024u);
  EXPECT_EQ(l[RLIMIT_NOFILE].max, 524288u);
  EXPECT_EQ(l[RLIMIT_MSGQUEUE].cur, 819200u);
  EXPECT_EQ(l[RLIMIT_NICE].cur, 0u);  // no units
  EXPECT_EQ(l[RLIMIT_NICE].max, 0u);
  EXPECT_EQ(l[RLIMIT_RTPRIO].cur, 0u);
  EXPECT_EQ(l[RLIMIT_RTTIME].cur, inf);
}

TEST(ParseLimits, UnitlessRowsWithoutPadding) {
  std::string text = kLimits;
  const std::string row = "Max nice priority         0                    0                    \n";
  text.replace(text.find(row), row.size(), "Max nice priority 10 20\n");
  EXPECT_NE(text.find("\nMax realtime priority "), std::string::npos);
  std::vector<Limit> l = parse_limits(text);
  ASSERT_EQ(l.size(), 16u);
  EXPECT_EQ(l[RLIMIT_NICE].cur, 10u);
  EXPECT_EQ(l[RLIMIT_NICE].max, 20u);
}

TEST(ParseLimits, Malformed) {
  EXPECT_THROW(parse_limits("Limit Soft Limit Hard Limit Units\nMax cpu time 1 2 seconds\n"),
               Error);  // too few rows
  std::string text = kLimits;
  text.replace(text.find("8388608 "), 7, "lots!!!");
  EXPECT_THROW(parse_limits(text), Error);
}

TEST(ParseFdinfo, OctalFlags) {
  FdInfo f = parse_fdinfo("pos:\t123\nflags:\t02100002\nmnt_id:\t25\nino:\t1234\n");
  EXPECT_EQ(f.pos, 123u);
  EXPECT_EQ(f.flags, 02100002u);
  EXPECT_EQ(f.flags & O_ACCMODE, static_cast<uint32_t>(O_RDWR));
  EXPECT_TRUE(f.flags & O_CLOEXEC);
  EXPECT_EQ(f.mnt_id, 25);
  EXPECT_EQ(f.ino, 1234u);
}

TEST(ParseFdinfo, OldKernelAndExtraLines) {
  // No ino line; eventfd/inotify style extras are ignored.
  FdInfo f = parse_fdinfo(
      "pos:\t0\nflags:\t04002\nmnt_id:\t15\neventfd-count:                0\n"
      "inotify wd:1 ino:3 sdev:800001 mask:fff ignored_mask:0\n");
  EXPECT_EQ(f.pos, 0u);
  EXPECT_EQ(f.flags, 04002u);
  EXPECT_EQ(f.mnt_id, 15);
  EXPECT_EQ(f.ino, 0u);
  EXPECT_THROW(parse_fdinfo("mnt_id:\t1\n"), Error);
  EXPECT_THROW(parse_fdinfo("pos:\t0\nflags:\t089\n"), Error);  // not octal
}

TEST(ParseLocks, Sample) {
  // /proc/locks of kernel 6.18 with every kind, a waiter and a lease.
  std::vector<FileLock> v = parse_locks(
      "1: OFDLCK ADVISORY  WRITE -1 fe:00:10953150 50 59\n"
      "2: POSIX  ADVISORY  READ 14993 fe:00:10953150 100 EOF\n"
      "3: POSIX  ADVISORY  WRITE 14993 fe:00:10953150 0 9\n"
      "3: -> POSIX  ADVISORY  WRITE 15000 fe:00:10953150 0 0\n"
      "4: FLOCK  ADVISORY  READ 14993 fe:00:10953148 0 EOF\n"
      "5: LEASE  ACTIVE    READ 2222 103:2a:77 0 EOF\n");
  ASSERT_EQ(v.size(), 6u);
  EXPECT_EQ(v[0].kind, "OFDLCK");
  EXPECT_EQ(v[0].mode, "ADVISORY");
  EXPECT_EQ(v[0].type, "WRITE");
  EXPECT_EQ(v[0].pid, -1);
  EXPECT_EQ(v[0].dev_major, 0xfeu);
  EXPECT_EQ(v[0].dev_minor, 0u);
  EXPECT_EQ(v[0].ino, 10953150u);
  EXPECT_EQ(v[0].start, 50);
  EXPECT_EQ(v[0].end, 59);
  EXPECT_FALSE(v[0].blocked);
  EXPECT_EQ(v[1].kind, "POSIX");
  EXPECT_EQ(v[1].type, "READ");
  EXPECT_EQ(v[1].pid, 14993);
  EXPECT_EQ(v[1].start, 100);
  EXPECT_EQ(v[1].end, -1);
  EXPECT_TRUE(v[3].blocked);
  EXPECT_EQ(v[3].kind, "POSIX");
  EXPECT_EQ(v[3].pid, 15000);
  EXPECT_EQ(v[3].end, 0);
  EXPECT_EQ(v[4].kind, "FLOCK");
  EXPECT_EQ(v[4].ino, 10953148u);
  EXPECT_EQ(v[5].kind, "LEASE");
  EXPECT_EQ(v[5].mode, "ACTIVE");
  EXPECT_EQ(v[5].dev_major, 0x103u);
  EXPECT_EQ(v[5].dev_minor, 0x2au);
  EXPECT_EQ(v[5].ino, 77u);
}

TEST(ParseLocks, DeepWaiterNoInodeAndMalformed) {
  FileLock w = parse_lock_line("7:   -> FLOCK  ADVISORY  WRITE 31 08:01:9 0 EOF");
  EXPECT_TRUE(w.blocked);
  EXPECT_EQ(w.kind, "FLOCK");
  EXPECT_EQ(w.pid, 31);
  FileLock n = parse_lock_line("8: POSIX  *NOINODE* WRITE 12 <none>:0 0 EOF");
  EXPECT_EQ(n.mode, "*NOINODE*");
  EXPECT_EQ(n.ino, 0u);
  EXPECT_TRUE(parse_locks("").empty());
  EXPECT_THROW(parse_lock_line("1: POSIX ADVISORY WRITE 12 fe:00:9 0"), Error);     // no end
  EXPECT_THROW(parse_lock_line("1: POSIX ADVISORY WRITE x fe:00:9 0 EOF"), Error);  // pid
  EXPECT_THROW(parse_lock_line("1: POSIX ADVISORY WRITE 1 fe00 0 EOF"), Error);     // device
  EXPECT_THROW(parse_lock_line("POSIX ADVISORY WRITE 1 fe:00:9 0 EOF"), Error);     // no id
}

TEST(ParseFdinfo, LockLines) {
  FdInfo f = parse_fdinfo(
      "pos:\t0\nflags:\t02100002\nmnt_id:\t27\nino:\t10953150\n"
      "lock:\t1: POSIX  ADVISORY  WRITE 14993 fe:00:10953150 0 9\n"
      "lock:\t2: POSIX  ADVISORY  READ 14993 fe:00:10953150 100 EOF\n");
  ASSERT_EQ(f.locks.size(), 2u);
  EXPECT_EQ(f.locks[0].type, "WRITE");
  EXPECT_EQ(f.locks[0].end, 9);
  EXPECT_EQ(f.locks[1].start, 100);
  EXPECT_EQ(f.locks[1].end, -1);
}

// ---- live checks on this process -------------------------------------------------------

const Vma* find_vma(const std::vector<Vma>& v, const void* p) {
  auto a = reinterpret_cast<uintptr_t>(p);
  for (const Vma& m : v)
    if (m.start <= a && a < m.end) return &m;
  return nullptr;
}

TEST(Live, Stat) {
  Stat s = read_stat(getpid());
  EXPECT_EQ(s.pid, getpid());
  EXPECT_EQ(s.ppid, getppid());
  EXPECT_EQ(s.state, 'R');
  EXPECT_EQ(s.pgrp, getpgrp());
  EXPECT_EQ(s.session, getsid(0));
  EXPECT_GE(s.num_threads, 1);
  EXPECT_NE(s.startstack, 0u);
}

TEST(Live, Status) {
  Status s = read_status(getpid());
  EXPECT_EQ(s.pid, getpid());
  EXPECT_EQ(s.tgid, getpid());
  EXPECT_EQ(s.ppid, getppid());
  EXPECT_EQ(s.uid[0], getuid());
  EXPECT_EQ(s.uid[1], geteuid());
  EXPECT_EQ(s.gid[0], getgid());
  EXPECT_EQ(s.state, 'R');
  ASSERT_FALSE(s.nstgid.empty());
  EXPECT_EQ(s.nstgid.back(), getpid());
  mode_t old = umask(027);
  EXPECT_EQ(read_status(getpid()).umask, 027u);
  umask(old);
  EXPECT_EQ(read_status(getpid()).umask, static_cast<uint32_t>(old));
}

TEST(Live, SmapsStackAndText) {
  int local = 0;
  std::vector<Vma> v = read_smaps(getpid());
  ASSERT_FALSE(v.empty());
  const Vma* stack = find_vma(v, &local);
  ASSERT_NE(stack, nullptr);
  EXPECT_EQ(stack->path, "[stack]");
  EXPECT_TRUE(stack->has_flag("gd"));
  EXPECT_TRUE(stack->r);
  EXPECT_TRUE(stack->w);
  EXPECT_GT(stack->rss_kb, 0u);

  const Vma* text = find_vma(v, reinterpret_cast<const void*>(&find_vma));
  ASSERT_NE(text, nullptr);
  EXPECT_TRUE(text->x);
  EXPECT_TRUE(text->r);
  EXPECT_TRUE(text->has_flag("ex"));
  EXPECT_EQ(text->path, read_link("/proc/self/exe"));
  EXPECT_NE(text->inode, 0u);

  EXPECT_TRUE(std::is_sorted(v.begin(), v.end(),
                             [](const Vma& a, const Vma& b) { return a.start < b.start; }));
  std::vector<Vma> m = read_maps(getpid());
  EXPECT_NE(find_vma(m, &local), nullptr);
}

// A smaps far bigger than one read chunk: every VMA must come through.
TEST(Live, LargeSmaps) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t n = 600;
  char* base =
      static_cast<char*>(mmap(nullptr, n * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(base, MAP_FAILED);
  for (size_t i = 0; i < n; i += 2) ASSERT_EQ(mprotect(base + i * page, page, PROT_NONE), 0);
  std::string text = read_file("/proc/self/smaps");
  EXPECT_GT(text.size(), 256u * 1024);
  std::vector<Vma> v = read_smaps(getpid());
  size_t inside = 0;
  for (const Vma& m : v)
    if (m.start >= reinterpret_cast<uintptr_t>(base) &&
        m.end <= reinterpret_cast<uintptr_t>(base + n * page)) {
      EXPECT_EQ(m.size(), page);
      EXPECT_FALSE(m.vm_flags.empty());
      inside++;
    }
  EXPECT_EQ(inside, n);
  munmap(base, n * page);
}

TEST(Live, Threads) {
  EXPECT_EQ(read_threads(getpid()), std::vector<pid_t>{getpid()});
}

TEST(Live, Children) {
  EXPECT_TRUE(read_children(getpid(), getpid()).empty());
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char c;
    close(p[1]);
    (void)!read(p[0], &c, 1);  // until the parent closes the pipe
    _exit(0);
  }
  close(p[0]);
  std::vector<pid_t> kids = read_children(getpid(), getpid());
  close(p[1]);
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  EXPECT_EQ(kids, std::vector<pid_t>{child});
}

TEST(Live, Limits) {
  std::vector<Limit> l = read_limits(getpid());
  ASSERT_EQ(l.size(), 16u);
  for (int r : {RLIMIT_NOFILE, RLIMIT_STACK, RLIMIT_CORE, RLIMIT_RTTIME}) {
    struct rlimit rl;
    ASSERT_EQ(getrlimit(r, &rl), 0);
    EXPECT_EQ(l[r].cur, static_cast<uint64_t>(rl.rlim_cur)) << r;
    EXPECT_EQ(l[r].max, static_cast<uint64_t>(rl.rlim_max)) << r;
  }
}

TEST(Live, Fdinfo) {
  char path[] = "/tmp/proc_test.XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  ASSERT_EQ(write(fd, "hello", 5), 5);
  int fd2 = open(fmt::format("/proc/self/fd/{}", fd).c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(fd2, 0);
  ASSERT_EQ(lseek(fd, 3, SEEK_SET), 3);
  FdInfo f = read_fdinfo(getpid(), fd);
  EXPECT_EQ(f.pos, 3u);
  EXPECT_EQ(f.flags & O_ACCMODE, static_cast<uint32_t>(O_RDWR));
  FdInfo f2 = read_fdinfo(getpid(), fd2);
  EXPECT_EQ(f2.flags & O_ACCMODE, static_cast<uint32_t>(O_WRONLY));
  EXPECT_TRUE(f2.flags & O_APPEND);
  EXPECT_TRUE(f2.flags & O_CLOEXEC);
  EXPECT_GE(f.mnt_id, 0);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(f.ino, static_cast<uint64_t>(st.st_ino));
  EXPECT_TRUE(f.locks.empty());
  // A lock on the file shows in its fdinfo and in /proc/locks.
  struct flock fl = {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 2;
  fl.l_len = 3;
  ASSERT_EQ(fcntl(fd, F_SETLK, &fl), 0);
  f = read_fdinfo(getpid(), fd);
  ASSERT_EQ(f.locks.size(), 1u);
  EXPECT_EQ(f.locks[0].kind, "POSIX");
  EXPECT_EQ(f.locks[0].pid, getpid());
  EXPECT_EQ(f.locks[0].ino, static_cast<uint64_t>(st.st_ino));
  EXPECT_EQ(f.locks[0].start, 2);
  EXPECT_EQ(f.locks[0].end, 4);
  bool seen = false;
  for (const FileLock& l : read_locks())
    seen |= l.pid == getpid() && l.ino == static_cast<uint64_t>(st.st_ino) && l.start == 2;
  EXPECT_TRUE(seen);
  close(fd2);
  close(fd);
}

// ---- helpers -------------------------------------------------------------------------

TEST(Helpers, ReadFileAndTryReadFile) {
  char path[] = "/tmp/proc_test.XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string big(300 * 1024 + 7, 'x');
  for (size_t i = 0; i < big.size(); i += 997) big[i] = static_cast<char>('a' + i % 26);
  ASSERT_EQ(write(fd, big.data(), big.size()), static_cast<ssize_t>(big.size()));
  close(fd);
  EXPECT_EQ(read_file(path), big);
  EXPECT_EQ(try_read_file(path), big);
  unlink(path);
  EXPECT_EQ(try_read_file(path), std::nullopt);
  try {
    read_file(path);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos);
  }
  // A /proc file reports size 0 but has content.
  EXPECT_NE(read_file("/proc/self/status").find("Pid:"), std::string::npos);
  EXPECT_TRUE(read_file("/dev/null").empty());
}

TEST(Helpers, ReadLink) {
  char target[] = "/tmp/proc_test.XXXXXX";
  int fd = mkstemp(target);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(read_link(fmt::format("/proc/self/fd/{}", fd)), target);
  std::string lnk = std::string(target) + ".lnk";
  std::string long_target(1000, 'y');  // longer than the first buffer
  ASSERT_EQ(symlink(long_target.c_str(), lnk.c_str()), 0);
  EXPECT_EQ(read_link(lnk), long_target);
  unlink(lnk.c_str());
  unlink(target);
  close(fd);
  EXPECT_THROW(read_link(lnk), Error);
}

TEST(Helpers, ListDirNumbers) {
  char dir[] = "/tmp/proc_test.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::vector<std::string> names = {"10", "2", "1", "abc", "1a", "007"};
  for (const auto& n : names) {
    std::string p = std::string(dir) + "/" + n;
    ASSERT_EQ(mkdir(p.c_str(), 0700), 0);
  }
  EXPECT_EQ(list_dir_numbers(dir), (std::vector<int>{1, 2, 7, 10}));
  for (const auto& n : names) rmdir((std::string(dir) + "/" + n).c_str());
  rmdir(dir);
  EXPECT_THROW(list_dir_numbers(dir), Error);
}

pid_t missing_pid() {
  // pid_max is an exclusive bound: no process can have it as PID.
  std::string s = read_file("/proc/sys/kernel/pid_max");
  return static_cast<pid_t>(std::stol(s));
}

TEST(Errors, MissingPidNamesTheFile) {
  pid_t pid = missing_pid();
  std::string path = fmt::format("/proc/{}/stat", pid);
  try {
    read_stat(pid);
    FAIL() << "no throw";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
  }
  EXPECT_THROW(read_status(pid), Error);
  EXPECT_THROW(read_smaps(pid), Error);
  EXPECT_THROW(read_maps(pid), Error);
  EXPECT_THROW(read_limits(pid), Error);
  EXPECT_THROW(read_fdinfo(pid, 0), Error);
  EXPECT_THROW(read_children(pid, pid), Error);
  EXPECT_THROW(read_threads(pid), Error);
  EXPECT_THROW(read_fdinfo(getpid(), 987654), Error);
}

}  // namespace
}  // namespace cryo::proc

TEST(ParseMountinfo, FieldsTagsAndEscapes) {
  const std::string text =
      "71 46 254:0 /tmp/x/root\\040fs / rw,relatime shared:3 master:1 - ext4 /dev/vda "
      "rw,discard\n"
      "80 71 0:39 / /data rw,nosuid,nodev - tmpfs mntns-data rw,size=4096k,mode=755\n";
  auto m = cryo::proc::parse_mountinfo(text);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].id, 71u);
  EXPECT_EQ(m[0].parent, 46u);
  EXPECT_EQ(m[0].major, 254u);
  EXPECT_EQ(m[0].minor, 0u);
  EXPECT_EQ(m[0].root, "/tmp/x/root fs");
  EXPECT_EQ(m[0].mountpoint, "/");
  EXPECT_EQ(m[0].shared, 3u);
  EXPECT_EQ(m[0].master, 1u);
  EXPECT_EQ(m[0].fstype, "ext4");
  EXPECT_EQ(m[0].super_opts, "rw,discard");
  EXPECT_EQ(m[1].shared, 0u);
  EXPECT_EQ(m[1].mount_opts, "rw,nosuid,nodev");
  EXPECT_EQ(m[1].source, "mntns-data");
  EXPECT_THROW(cryo::proc::parse_mountinfo("1 2 3:4 / /\n"), cryo::Error);
}
// cgroups (proc/cgroups.h, dump/cgroups.h): the names CRIU's images use.
namespace cryo::proc {
namespace {

TEST(Cgroups, ParseCgroup) {
  auto m = parse_cgroup("9:name=systemd:/\n2:cpu,cpuacct:/a/b\n0::/x y\n");
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0], (CgroupMember{"name=systemd", "/"}));
  EXPECT_EQ(m[1], (CgroupMember{"cpu,cpuacct", "/a/b"}));
  EXPECT_EQ(m[2], (CgroupMember{"unified", "/x y"}));
  EXPECT_THROW(parse_cgroup("garbage\n"), Error);
  EXPECT_EQ(cgroup_controllers("cpu,cpuacct"), (std::vector<std::string>{"cpu", "cpuacct"}));
}

TEST(Cgroups, ParseMounts) {
  auto m = parse_cgroup_mounts(
      "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpuacct,cpu\n"
      "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
      "41 31 0:38 / /sys/fs/cgroup/unified rw shared:5 - cgroup2 cgroup2 rw\n"
      "42 31 0:29 /sub /mnt/cpu\\040x rw - cgroup cgroup rw,cpuacct,cpu\n"
      "43 31 0:30 / /mnt/pids\\040x rw - cgroup cgroup rw,pids\n");
  EXPECT_EQ(m["cpu,cpuacct"], "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(m["name=systemd"], "/sys/fs/cgroup/systemd");
  EXPECT_EQ(m["unified"], "/sys/fs/cgroup/unified");
  EXPECT_EQ(m["pids"], "/mnt/pids x");  // octal escapes undone; a mount of a subdir is skipped
  EXPECT_EQ(m.size(), 4u);
}

TEST(Cgroups, PropValue) {
  EXPECT_EQ(cgroup_prop_value("memory.oom_control", "oom_kill_disable 1\nunder_oom 0"), "1");
  EXPECT_EQ(cgroup_prop_value("pids.max", "max"), "max");
}

}  // namespace
}  // namespace cryo::proc

namespace cryo::dump {
namespace {

TEST(Cgroups, PropsSpec) {
  CgroupProps p = cgroup_props(
      "\"pids\":\n - \"strategy\": \"replace\"\n - \"properties\": [\"pids.max\"]\n"
      "\"memory\":\n - \"strategy\": \"merge\"\n - \"properties\": [\"memory.high\", "
      "\"memory.swappiness\"]\n\"new\":\n - \"properties\": [\"new.x\"]\n",
      "spec");
  EXPECT_EQ(p["pids"], (std::vector<std::string>{"pids.max"}));
  EXPECT_EQ(p["memory"].back(), "memory.high");
  EXPECT_EQ(std::count(p["memory"].begin(), p["memory"].end(), "memory.swappiness"), 1);
  EXPECT_EQ(p["new"], (std::vector<std::string>{"new.x"}));
  EXPECT_FALSE(p["cpu"].empty());  // the built-in list stays for the others
  EXPECT_THROW(cgroup_props("\"pids\":\n - \"strategy\": \"sometimes\"\n", "spec"), Error);
  EXPECT_THROW(cgroup_props("pids: [a]\n", "spec"), Error);
}

}  // namespace
}  // namespace cryo::dump
