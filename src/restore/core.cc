#include "restore/core.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "arch/x86_64/regs.h"
#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "kernel/syscalls.h"
#include "proc/proc.h"

namespace cryo::restore {
namespace {

constexpr int kMaxSig = 64;
const char* const kLimitNames[] = {"CPU",      "FSIZE",  "DATA",    "STACK", "CORE",  "RSS",
                                   "NPROC",    "NOFILE", "MEMLOCK", "AS",    "LOCKS", "SIGPENDING",
                                   "MSGQUEUE", "NICE",   "RTPRIO",  "RTTIME"};

// Setting a CPU-time itimer adds one scheduler tick to the value (so that at least the time
// asked for passes); the dumped value already had it, so take it off again. The tick is
// measured on cryo itself, rounded up to 10 us so the restored value never exceeds the dumped.
long cpu_timer_tick_us() {
  static long tick = [] {
    itimerval old{}, probe{}, back{};
    probe.it_value.tv_sec = 1000;
    if (::setitimer(ITIMER_VIRTUAL, &probe, &old) < 0) return 0L;
    ::getitimer(ITIMER_VIRTUAL, &back);
    ::setitimer(ITIMER_VIRTUAL, &old, nullptr);
    long diff = (back.it_value.tv_sec - 1000) * 1000000L + back.it_value.tv_usec;
    if (diff <= 0 || diff > 20000) return 0L;
    return (diff + 9) / 10 * 10;
  }();
  return tick;
}

// POSIX timers keep their IDs: with PR_TIMER_CREATE_RESTORE_IDS (Linux 6.16+), timer_create
// takes the ID to use from its timer_id argument.
void restore_posix_timers(RemoteTask& rt, const task_timers_entry& timers) {
  constexpr uint64_t kPrTimerCreateRestoreIds = 77;
  long r = rt.syscall(SYS_prctl, {kPrTimerCreateRestoreIds, 1, 0, 0, 0});
  if (r < 0)
    fail_errno(static_cast<int>(-r),
               "task {}: this kernel cannot create POSIX timers with given IDs "
               "(PR_TIMER_CREATE_RESTORE_IDS, Linux 6.16)",
               rt.tid());
  // /proc/PID/timers lists the newest first: create in ID order to get the same list back.
  std::vector<const posix_timer_entry*> order;
  for (const auto& t : timers.posix()) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->it_id() < b->it_id(); });
  for (const posix_timer_entry* tp : order) {
    const posix_timer_entry& t = *tp;
    struct {
      uint64_t value;
      int32_t signo;
      int32_t notify;
      int32_t tid;
      int32_t pad[11];
    } sev{};
    sev.value = t.sival_ptr();
    sev.signo = static_cast<int32_t>(t.si_signo());
    sev.notify = static_cast<int32_t>(t.it_sigev_notify());
    sev.tid = t.notify_thread_id();
    static_assert(sizeof sev == 64);
    uint64_t sev_addr = rt.put(0, &sev, sizeof sev);
    int32_t id = static_cast<int32_t>(t.it_id());
    uint64_t id_addr = rt.put(128, &id, sizeof id);
    rt.check("timer_create", SYS_timer_create, {t.clock_id(), sev_addr, id_addr});
    int32_t got = 0;
    rt.read_mem(id_addr, &got, sizeof got);
    if (got != id) fail("task {}: POSIX timer {} was created with ID {}", rt.tid(), id, got);
    itimerspec its{};
    its.it_interval.tv_sec = static_cast<time_t>(t.isec());
    its.it_interval.tv_nsec = static_cast<long>(t.insec());
    its.it_value.tv_sec = static_cast<time_t>(t.vsec());
    its.it_value.tv_nsec = static_cast<long>(t.vnsec());
    if (its.it_value.tv_sec || its.it_value.tv_nsec) {
      uint64_t a = rt.put(256, &its, sizeof its);
      rt.check("timer_settime", SYS_timer_settime, {static_cast<uint64_t>(id), 0, a, 0});
    }
  }
  rt.check("prctl(PR_TIMER_CREATE_RESTORE_IDS)", SYS_prctl, {kPrTimerCreateRestoreIds, 0, 0, 0, 0});
}

// Registers the process again for each membarrier() kind it was registered for.
void restore_membarrier(RemoteTask& rt, uint32_t mask) {
  uint32_t known = 0;
  for (uint32_t reg : kernel::kMembarrierRegisterCmds) known |= reg;
  if (mask & ~known)
    fail("image core-{}.img: unknown membarrier registrations {:#x}", rt.tid(), mask & ~known);
  for (uint32_t reg : kernel::kMembarrierRegisterCmds)
    if (mask & reg) rt.check("membarrier register", SYS_membarrier, {reg, 0, 0});
}

void restore_rlimits(pid_t pid, const task_rlimits_entry& rl) {
  for (int r = 0; r < rl.rlimits_size() && r < RLIM_NLIMITS; r++) {
    rlimit64 want{rl.rlimits(r).cur(), rl.rlimits(r).max()}, have;
    if (::prlimit64(pid, static_cast<__rlimit_resource>(r), nullptr, &have) == 0 &&
        have.rlim_cur == want.rlim_cur && have.rlim_max == want.rlim_max)
      continue;
    if (::prlimit64(pid, static_cast<__rlimit_resource>(r), &want, nullptr) < 0)
      fail_sys(
          "task {}: cannot set RLIMIT_{} to {}/{} (cryo's own hard limit may be lower; "
          "raising it needs CAP_SYS_RESOURCE)",
          pid, kLimitNames[r], want.rlim_cur, want.rlim_max);
  }
}

}  // namespace

void restore_process_state(RemoteTask& rt, const TaskPlan& t) {
  const pid_t pid = t.pid();
  const task_core_entry& tc = t.core.tc();

  // Blocked before the handlers are set: a signal sent to the task from then on (the restored
  // handler shows in /proc/PID/status) or from a timer armed here stays pending until the
  // release, instead of arriving during a remote call, where it would be lost.
  uint64_t all = ~0ULL;
  if (ptrace(PTRACE_SETSIGMASK, pid, sizeof all, &all) < 0)
    fail_sys("cannot block signals of task {}", pid);

  int idx = 0;
  for (int sig = 1; sig <= kMaxSig; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    if (idx >= tc.sigactions_size()) break;
    const sa_entry& sa = tc.sigactions(idx++);
    kernel::KernelSigaction ka{sa.sigaction(), sa.flags(), sa.restorer(), sa.mask()};
    uint64_t a = rt.put(0, &ka, sizeof ka);
    rt.check("rt_sigaction", SYS_rt_sigaction, {static_cast<uint64_t>(sig), a, 0, 8});
  }

  if (tc.has_timers()) {
    const itimer_entry* which[3] = {&tc.timers().real(), &tc.timers().virt(), &tc.timers().prof()};
    for (int w = 0; w < 3; w++) {
      itimerval v{};
      v.it_interval.tv_sec = static_cast<time_t>(which[w]->isec());
      v.it_interval.tv_usec = static_cast<suseconds_t>(which[w]->iusec());
      v.it_value.tv_sec = static_cast<time_t>(which[w]->vsec());
      v.it_value.tv_usec = static_cast<suseconds_t>(which[w]->vusec());
      if (!v.it_value.tv_sec && !v.it_value.tv_usec) {
        // A periodic timer whose signal is pending reads as 0 (Linux 6.13+): it is armed.
        if (!v.it_interval.tv_sec && !v.it_interval.tv_usec) continue;
        v.it_value = v.it_interval;
      }
      if (w != ITIMER_REAL) {
        long us = v.it_value.tv_sec * 1000000L + v.it_value.tv_usec - cpu_timer_tick_us();
        if (us < 1) us = 1;
        v.it_value.tv_sec = us / 1000000;
        v.it_value.tv_usec = us % 1000000;
      }
      uint64_t a = rt.put(0, &v, sizeof v);
      rt.check("setitimer", SYS_setitimer, {static_cast<uint64_t>(w), a, 0});
    }
  }

  rt.check("personality", SYS_personality, {tc.personality()});
  // Before the threads exist: with one user of the mm, registering waits for nobody.
  if (tc.membarrier_registration_mask()) restore_membarrier(rt, tc.membarrier_registration_mask());
  if (tc.child_subreaper())
    rt.check("prctl(PR_SET_CHILD_SUBREAPER)", SYS_prctl, {PR_SET_CHILD_SUBREAPER, 1});
  if (tc.has_rlimits()) restore_rlimits(pid, tc.rlimits());
  if (tc.has_oom_score_adj()) {
    Fd fd(::open(fmt::format("/proc/{}/oom_score_adj", pid).c_str(), O_WRONLY | O_CLOEXEC));
    std::string v = std::to_string(tc.oom_score_adj());
    if (!fd || ::write(fd.get(), v.data(), v.size()) < 0) {
      if (errno == EACCES && tc.oom_score_adj() < 0)
        fail_sys(
            "task {}: cannot restore oom_score_adj {}: a value below cryo's own needs "
            "CAP_SYS_RESOURCE; run cryo restore with that capability (or with the same "
            "oom_score_adj)",
            pid, v);
      fail_sys("task {}: cannot restore oom_score_adj {}", pid, v);
    }
  }
}

namespace {

// Queues saved signals from inside the task, so that any si_code is accepted.
void queue_signals(RemoteTask& rt, const signal_queue_entry& q, bool shared) {
  const pid_t tid = rt.tid();
  for (const auto& s : q.signals()) {
    siginfo_t si;
    if (s.siginfo().size() != sizeof si)
      fail("image core-{}.img is corrupt: a pending signal of {} bytes", tid, s.siginfo().size());
    std::memcpy(&si, s.siginfo().data(), sizeof si);
    uint64_t a = rt.put(0, &si, sizeof si);
    if (shared)
      rt.check("rt_sigqueueinfo", SYS_rt_sigqueueinfo,
               {static_cast<uint64_t>(tid), static_cast<uint64_t>(si.si_signo), a});
    else
      rt.check("rt_tgsigqueueinfo", SYS_rt_tgsigqueueinfo,
               {static_cast<uint64_t>(rt.tgid()), static_cast<uint64_t>(tid),
                static_cast<uint64_t>(si.si_signo), a});
  }
}

}  // namespace

void restore_thread_state(RemoteTask& rt, const core_entry& core) {
  const pid_t tid = rt.tid();
  const thread_core_entry& th = core.thread_core();
  if (th.has_comm())
    rt.check("prctl(PR_SET_NAME)", SYS_prctl, {PR_SET_NAME, rt.put_str(0, th.comm())});
  rt.check("set_tid_address", SYS_set_tid_address, {core.thread_info().clear_tid_addr()});
  if (th.futex_rla())
    rt.check("set_robust_list", SYS_set_robust_list, {th.futex_rla(), th.futex_rla_len()});
  if (th.has_sas() && !(th.sas().ss_flags() & SS_DISABLE)) {
    stack_t ss{};
    ss.ss_sp = reinterpret_cast<void*>(th.sas().ss_sp());
    ss.ss_size = th.sas().ss_size();
    ss.ss_flags = static_cast<int>(th.sas().ss_flags() & (1U << 31));  // SS_AUTODISARM
    rt.check("sigaltstack", SYS_sigaltstack, {rt.put(0, &ss, sizeof ss), 0});
  }
  if (th.has_rseq_entry() && th.rseq_entry().rseq_abi_pointer())
    rt.check("rseq", SYS_rseq,
             {th.rseq_entry().rseq_abi_pointer(), th.rseq_entry().rseq_abi_size(), 0,
              th.rseq_entry().signature()});
  if (th.has_sched_policy() && th.sched_policy() != SCHED_OTHER) {
    sched_param sp{};
    sp.sched_priority = static_cast<int>(th.sched_prio());
    if (::sched_setscheduler(tid, static_cast<int>(th.sched_policy()), &sp) < 0)
      fail_sys("task {}: cannot restore scheduling policy {}", tid, th.sched_policy());
  }
  if (th.has_sched_nice() && ::setpriority(PRIO_PROCESS, tid, th.sched_nice()) < 0)
    fail_sys("task {}: cannot restore nice {}", tid, th.sched_nice());
  // 0 would mean "the default" to the kernel; a task under a realtime policy reads 0.
  if (th.cryo_timerslack_ns())
    rt.check("prctl(PR_SET_TIMERSLACK)", SYS_prctl, {PR_SET_TIMERSLACK, th.cryo_timerslack_ns()});
  if (th.has_signals_p()) queue_signals(rt, th.signals_p(), false);
}

void restore_after_creds(RemoteTask& rt, const core_entry& core, bool is_root_leader) {
  const thread_core_entry& th = core.thread_core();
  // The root's old parent is gone: a death signal would fire when cryo exits. The root was
  // created with SIGKILL as its death signal (restore/tree.cc): it goes now.
  if (is_root_leader)
    rt.check("prctl(PR_SET_PDEATHSIG, 0)", SYS_prctl, {PR_SET_PDEATHSIG, 0});
  else if (th.pdeath_sig())
    rt.check("prctl(PR_SET_PDEATHSIG)", SYS_prctl, {PR_SET_PDEATHSIG, th.pdeath_sig()});
}

void restore_timers(RemoteTask& leader, const TaskPlan& t) {
  const task_core_entry& tc = t.core.tc();
  if (tc.has_timers() && tc.timers().posix_size()) restore_posix_timers(leader, tc.timers());
}

void restore_dumpable(RemoteTask& leader, const TaskPlan& t) {
  const mm_entry& mm = t.mm;
  if (mm.has_dumpable() && (mm.dumpable() == 0 || mm.dumpable() == 1))
    leader.check("prctl(PR_SET_DUMPABLE)", SYS_prctl,
                 {PR_SET_DUMPABLE, static_cast<uint64_t>(mm.dumpable())});
}

void restore_shared_signals(RemoteTask& leader, const TaskPlan& t) {
  if (t.core.tc().has_signals_s()) queue_signals(leader, t.core.tc().signals_s(), true);
}

namespace {

// Raises each capability of the dumped ambient set (PR_CAP_AMBIENT_RAISE, one at a time).
void restore_ambient(RemoteTask& rt, uint64_t amb) {
  for (uint64_t cap = 0; cap < 64; cap++)
    if (amb & (1ULL << cap)) {
      long r = rt.syscall(SYS_prctl, {PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0});
      if (r < 0)
        fail_errno(static_cast<int>(-r),
                   "task {}: cannot raise ambient capability {} (it must be permitted and "
                   "inheritable, and this kernel must know it)",
                   rt.tid(), cap);
    }
}

}  // namespace

void restore_creds(RemoteTask& rt, const core_entry& core) {
  if (!core.thread_core().has_creds()) return;
  const creds_entry& c = core.thread_core().creds();
  auto cap64 = [](const google::protobuf::RepeatedField<uint32_t>& f) {
    uint64_t v = 0;
    for (int i = 0; i < f.size() && i < 2; i++) v |= static_cast<uint64_t>(f.Get(i)) << (32 * i);
    return v;
  };
  constexpr uint32_t kKeepCaps = 1u << 4;        // SECBIT_KEEP_CAPS
  constexpr uint32_t kNoAmbientRaise = 1u << 6;  // SECBIT_NO_CAP_AMBIENT_RAISE
  // The *_LOCKED bits (odd positions): once set, the bits they guard cannot change.
  constexpr uint32_t kLockBits = 0xaaa;
  constexpr uint64_t kSetpcap = 1ULL << 8;  // CAP_SETPCAP, needed to set securebits
  const uint32_t locks = c.secbits() & kLockBits;

  // While still root: shrink the bounding set, set groups and gids.
  if (c.cap_bnd_size()) {
    uint64_t bnd = cap64(c.cap_bnd());
    long last = 0;
    std::string lc = proc::read_file("/proc/sys/kernel/cap_last_cap");
    last = std::stol(lc);
    for (long cap = 0; cap <= last; cap++)
      if (!(bnd & (1ULL << cap)))
        rt.check("prctl(PR_CAPBSET_DROP)", SYS_prctl,
                 {PR_CAPBSET_DROP, static_cast<uint64_t>(cap)});
  }
  std::vector<uint32_t> groups(c.groups().begin(), c.groups().end());
  uint64_t g = groups.empty() ? 0 : rt.put(0, groups.data(), groups.size() * 4);
  rt.check("setgroups", SYS_setgroups, {groups.size(), g});
  rt.check("setresgid", SYS_setresgid, {c.gid(), c.egid(), c.sgid()});
  rt.syscall(SYS_setfsgid, {c.fsgid()});
  // Unlocked bits now; locked ones and the one forbidding ambient raises only at the end, as
  // they would forbid the steps between.
  const uint32_t late_bits = kKeepCaps | kLockBits | kNoAmbientRaise;
  if (c.secbits() & ~late_bits)
    rt.check("prctl(PR_SET_SECUREBITS)", SYS_prctl, {PR_SET_SECUREBITS, c.secbits() & ~late_bits});
  // Keep the permitted set across the uid change, then set the dumped sets exactly.
  rt.check("prctl(PR_SET_KEEPCAPS)", SYS_prctl, {PR_SET_KEEPCAPS, 1});
  rt.check("setresuid", SYS_setresuid, {c.uid(), c.euid(), c.suid()});
  rt.syscall(SYS_setfsuid, {c.fsuid()});
  auto capset = [&](uint64_t eff, uint64_t prm, uint64_t inh) {
    struct {
      uint32_t version;
      int pid;
    } hdr{0x20080522, 0};  // _LINUX_CAPABILITY_VERSION_3
    struct {
      uint32_t effective, permitted, inheritable;
    } data[2];
    for (int i = 0; i < 2; i++) {
      data[i].effective = static_cast<uint32_t>(eff >> (32 * i));
      data[i].permitted = static_cast<uint32_t>(prm >> (32 * i));
      data[i].inheritable = static_cast<uint32_t>(inh >> (32 * i));
    }
    uint64_t h = rt.put(0, &hdr, sizeof hdr);
    uint64_t d = rt.put(64, data, sizeof data);
    rt.check("capset", SYS_capset, {h, d});
  };
  const uint64_t eff = cap64(c.cap_eff()), prm = cap64(c.cap_prm()), inh = cap64(c.cap_inh());
  // Setting securebits takes CAP_SETPCAP: hold it (the task still has root's permitted set)
  // until the late bits are in, together with the dumped keep-caps bit.
  const bool late_secbits = locks || (c.secbits() & kNoAmbientRaise);
  if (late_secbits)
    capset(prm | kSetpcap, prm | kSetpcap, inh);
  else if (c.cap_prm_size())
    capset(eff, prm, inh);
  // Ambient capabilities last of the sets: a uid change and a capset that drops a capability
  // from the permitted or inheritable set clear them, and each must be in both sets.
  restore_ambient(rt, cap64(c.cap_amb()));
  if (late_secbits) {
    rt.check("prctl(PR_SET_SECUREBITS)", SYS_prctl, {PR_SET_SECUREBITS, c.secbits()});
    if (c.cap_prm_size()) capset(eff, prm, inh);
  }
  if (!locks)
    rt.check("prctl(PR_SET_KEEPCAPS)", SYS_prctl,
             {PR_SET_KEEPCAPS, (c.secbits() & kKeepCaps) ? 1u : 0u});
  if (c.no_new_privs())
    rt.check("prctl(PR_SET_NO_NEW_PRIVS)", SYS_prctl, {PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0});
}

void restore_registers(RemoteTask& rt, const core_entry& core) {
  const pid_t tid = rt.tid();
  std::string area = arch::get_xstate(tid);
  arch::xstate_from_image(core.thread_info().fpregs(), area);
  arch::set_xstate(tid, area);
  arch::Regs r = arch::regs_from_image(core.thread_info().gpregs());
  arch::prepare_restart(r);
  arch::tls_from_image(tid, core.thread_info(), fmt::format("core-{}.img", tid));
  arch::set_regs(tid, r);
  uint64_t mask =
      core.thread_core().blk_sigset() & ~((1ULL << (SIGKILL - 1)) | (1ULL << (SIGSTOP - 1)));
  if (ptrace(PTRACE_SETSIGMASK, tid, sizeof mask, &mask) < 0)
    fail_sys("cannot set the signal mask of task {}", tid);
}

}  // namespace cryo::restore
