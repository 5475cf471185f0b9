#include "dump/core.h"

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <cstdio>
#include <cstring>
#include <optional>

#include "arch/x86_64/regs.h"
#include "base/error.h"
#include "base/fault.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "dump/mm.h"
#include "infect/probe.h"
#include "infect/remote_task.h"
#include "infect/scratch_arena.h"
#include "kernel/syscalls.h"
#include "proc/proc.h"

namespace cryo::dump {
namespace {

constexpr int kMaxSig = 64;

void fill_itimer(itimer_entry* e, const itimerval& v) {
  e->set_isec(v.it_interval.tv_sec);
  e->set_iusec(v.it_interval.tv_usec);
  e->set_vsec(v.it_value.tv_sec);
  e->set_vusec(v.it_value.tv_usec);
}

// Pending signals of one queue (private, or the process-wide one) with their siginfo.
void dump_signal_queue(pid_t pid, bool shared, signal_queue_entry* q) {
  struct {
    uint64_t off;
    uint32_t flags;
    int32_t nr;
  } args{0, shared ? 1u : 0u, 32};  // PTRACE_PEEKSIGINFO_SHARED = 1
  siginfo_t buf[32];
  for (;;) {
    long n = ptrace(static_cast<__ptrace_request>(0x4209), pid, &args, buf);  // PEEKSIGINFO
    if (n < 0) fail_sys("cannot read the pending signals of task {}", pid);
    if (n == 0) break;
    for (long i = 0; i < n; i++) q->add_signals()->set_siginfo(&buf[i], sizeof(siginfo_t));
    args.off += static_cast<uint64_t>(n);
  }
}

// POSIX timers from /proc/PID/timers; their times are asked of the task (timer_gettime).
void dump_posix_timers(pid_t pid, RemoteTask& rt, task_timers_entry* timers) {
  auto text = proc::try_read_file(fmt::format("/proc/{}/timers", pid));
  if (!text) return;
  posix_timer_entry* cur = nullptr;
  size_t pos = 0;
  while (pos < text->size()) {
    size_t nl = text->find('\n', pos);
    if (nl == std::string::npos) nl = text->size();
    std::string line = text->substr(pos, nl - pos);
    pos = nl + 1;
    unsigned long a = 0, b = 0;
    char kind[16] = "", who[16] = "";
    int id = 0;
    if (std::sscanf(line.c_str(), "ID: %d", &id) == 1) {
      cur = timers->add_posix();
      cur->set_it_id(static_cast<uint32_t>(id));
      cur->set_clock_id(0);
      cur->set_si_signo(0);
      cur->set_it_sigev_notify(SIGEV_SIGNAL);
      cur->set_sival_ptr(0);
    } else if (!cur) {
      continue;
    } else if (std::sscanf(line.c_str(), "signal: %lu/%lx", &a, &b) == 2) {
      cur->set_si_signo(static_cast<uint32_t>(a));
      cur->set_sival_ptr(b);
    } else if (std::sscanf(line.c_str(), "notify: %15[a-z]/%15[a-z].%lu", kind, who, &a) >= 1) {
      std::string k = kind, w = who;
      if (w == "tid") k = "thread";  // "signal/tid.N": SIGEV_THREAD_ID
      if (k == "none") {
        cur->set_it_sigev_notify(SIGEV_NONE);
      } else if (k == "thread") {
        cur->set_it_sigev_notify(SIGEV_SIGNAL | 4);  // SIGEV_THREAD_ID
        cur->set_notify_thread_id(static_cast<int32_t>(a));
      } else {
        cur->set_it_sigev_notify(SIGEV_SIGNAL);
      }
    } else if (std::sscanf(line.c_str(), "ClockID: %lu", &a) == 1) {
      cur->set_clock_id(static_cast<uint32_t>(a));
    }
  }
  for (auto& t : *timers->mutable_posix()) {
    itimerspec its = check_out<itimerspec>(rt, "timer_gettime", SYS_timer_gettime, t.it_id());
    t.set_isec(its.it_interval.tv_sec);
    t.set_insec(its.it_interval.tv_nsec);
    t.set_vsec(its.it_value.tv_sec);
    t.set_vnsec(its.it_value.tv_nsec);
    t.set_overrun(rt.syscall(SYS_timer_getoverrun, t.it_id()).value_or<uint32_t>(0));
  }
}

// A thread stopped inside an rseq critical section is moved to the section's abort handler
// and its rseq_cs cleared, as the kernel does on the thread's next return to user space.
// Done before any syscall in the thread: that return (at cryo's gadget, outside the section)
// would clear rseq_cs without the abort, and the thread would go on unprotected.
void abort_rseq(pid_t tid, arch::Regs& regs) {
  kernel::RseqConfig rseq{};
  long len =
      ptrace(static_cast<__ptrace_request>(PTRACE_GET_RSEQ_CONFIGURATION), tid, sizeof rseq, &rseq);
  if (len <= 0 || !rseq.rseq_abi_pointer) return;
  const uint64_t cs_at = rseq.rseq_abi_pointer + kernel::kRseqCsOffset;
  uint64_t cs_ptr = 0;
  iovec l1{&cs_ptr, sizeof cs_ptr}, r1{reinterpret_cast<void*>(cs_at), sizeof cs_ptr};
  if (::process_vm_readv(tid, &l1, 1, &r1, 1, 0) != sizeof cs_ptr || !cs_ptr) return;
  kernel::RseqCs cs{};
  iovec l2{&cs, sizeof cs}, r2{reinterpret_cast<void*>(cs_ptr), sizeof cs};
  if (::process_vm_readv(tid, &l2, 1, &r2, 1, 0) != sizeof cs)
    fail_sys("task {}: cannot read its rseq critical section at {:#x}", tid, cs_ptr);
  uint64_t ip = kernel::rseq_resume_ip(regs.rip, cs);
  if (ip == regs.rip) return;
  log::debug("task {}: in an rseq critical section at {:#x}: resumes at {:#x}", tid, regs.rip, ip);
  uint64_t zero = 0;
  iovec l3{&zero, sizeof zero}, r3{reinterpret_cast<void*>(cs_at), sizeof zero};
  if (::process_vm_writev(tid, &l3, 1, &r3, 1, 0) != sizeof zero)
    fail_sys("task {}: cannot clear its rseq critical section pointer", tid);
  regs.rip = ip;
  arch::set_regs(tid, regs);
}

// The membarrier() commands the process registered for. Kernels before 6.3 cannot say: there
// each private expedited kind is probed by issuing its barrier, which fails with EPERM when
// unregistered; a global expedited registration cannot be seen at all.
uint32_t membarrier_registrations(RemoteTask& rt) {
  long r = rt.syscall(SYS_membarrier, {kernel::kMembarrierGetRegistrations, 0, 0});
  if (r >= 0) return static_cast<uint32_t>(r);
  uint32_t mask = 0;
  for (uint32_t reg : kernel::kMembarrierRegisterCmds)
    if (reg != kernel::kMembarrierRegisterCmds[0] &&
        rt.syscall(SYS_membarrier, {reg >> 1, 0, 0}) == 0)
      mask |= reg;
  log::warn(
      "task {}: this kernel cannot report membarrier registrations; probed {:#x}, a global "
      "expedited registration cannot be seen",
      rt.tid(), mask);
  return mask;
}

void fill_caps(google::protobuf::RepeatedField<uint32_t>* f, uint64_t v) {
  f->Add(static_cast<uint32_t>(v));
  f->Add(static_cast<uint32_t>(v >> 32));
}

}  // namespace

core_entry dump_zombie_core(const FrozenTask& t) {
  core_entry core;
  core.set_mtype(core_entry::X86_64);
  auto* tc = core.mutable_tc();
  tc->set_task_state(image::kTaskDead);
  tc->set_exit_code(t.exit_status);
  tc->set_personality(0);
  tc->set_flags(0);
  tc->set_blk_sigset(0);
  tc->set_comm(t.stat.comm);
  return core;
}

namespace {

// What only the thread itself can tell (syscalls run in it).
void probe_thread(RemoteTask& rt, core_entry* core) {
  auto* ti = core->mutable_thread_info();
  auto* thc = core->mutable_thread_core();
  uint64_t s = rt.scratch();
  rt.check("prctl(PR_GET_TID_ADDRESS)", SYS_prctl, {PR_GET_TID_ADDRESS, s});
  uint64_t tid_addr = 0;
  rt.read_mem(s, &tid_addr, 8);
  ti->set_clear_tid_addr(tid_addr);

  rt.check("sigaltstack", SYS_sigaltstack, {0, s});
  stack_t ss;
  rt.read_mem(s, &ss, sizeof ss);
  auto* sas = thc->mutable_sas();
  sas->set_ss_sp(reinterpret_cast<uint64_t>(ss.ss_sp));
  sas->set_ss_size(ss.ss_size);
  sas->set_ss_flags(static_cast<uint32_t>(ss.ss_flags));

  rt.check("prctl(PR_GET_PDEATHSIG)", SYS_prctl, {PR_GET_PDEATHSIG, s});
  int pdeath = 0;
  rt.read_mem(s, &pdeath, sizeof pdeath);
  thc->set_pdeath_sig(pdeath);
  const long slack = rt.syscall(SYS_prctl, {PR_GET_TIMERSLACK});
  if (slack >= 0) thc->set_cryo_timerslack_ns(static_cast<uint64_t>(slack));
  thc->mutable_creds()->set_secbits(
      static_cast<uint32_t>(rt.check("prctl(PR_GET_SECUREBITS)", SYS_prctl, {PR_GET_SECUREBITS})));
}

// State of one thread: registers, masks, per-thread attributes and credentials.
// `sigmask` is the thread's own mask and th.regs its own registers, read before any probe.
// `probed`: probe_thread() already ran (in the leader, within the probe of the process).
// Returns the thread's /proc status, read here.
proc::Status dump_thread(FrozenTask& t, FrozenThread& th, uint64_t sigmask, const Gadgets& gadgets,
                         const std::vector<proc::Vma>& maps, SeccompTable& seccomp,
                         core_entry* core, bool probed) {
  const pid_t tid = th.tid;
  std::string xstate = arch::get_xstate(tid);
  kernel::RseqConfig rseq{};
  long rseq_len =
      ptrace(static_cast<__ptrace_request>(PTRACE_GET_RSEQ_CONFIGURATION), tid, sizeof rseq, &rseq);
  proc::Status st = proc::read_status(tid);

  auto* ti = core->mutable_thread_info();
  const arch::Regs& regs = th.regs;  // already out of an rseq critical section
  arch::regs_to_image(regs, ti->mutable_gpregs());
  arch::xstate_to_image(xstate, ti->mutable_fpregs());
  arch::tls_to_image(tid, ti);
  auto* thc = core->mutable_thread_core();
  thc->set_blk_sigset(sigmask);
  std::string comm = proc::read_file(fmt::format("/proc/{}/task/{}/comm", t.pid, tid));
  if (!comm.empty() && comm.back() == '\n') comm.pop_back();
  thc->set_comm(comm);
  dump_signal_queue(tid, false, thc->mutable_signals_p());

  auto* creds = thc->mutable_creds();
  if (!probed) {
    interrupt_point();
    ThreadProbe probe(th, gadgets, sigmask, &maps);
    probe_thread(probe.rt(), core);
  }

  creds->set_uid(st.uid[0]);
  creds->set_euid(st.uid[1]);
  creds->set_suid(st.uid[2]);
  creds->set_fsuid(st.uid[3]);
  creds->set_gid(st.gid[0]);
  creds->set_egid(st.gid[1]);
  creds->set_sgid(st.gid[2]);
  creds->set_fsgid(st.gid[3]);
  fill_caps(creds->mutable_cap_inh(), st.cap_inh);
  fill_caps(creds->mutable_cap_prm(), st.cap_prm);
  fill_caps(creds->mutable_cap_eff(), st.cap_eff);
  fill_caps(creds->mutable_cap_bnd(), st.cap_bnd);
  fill_caps(creds->mutable_cap_amb(), st.cap_amb);
  for (uint32_t g : st.groups) creds->add_groups(g);

  uint64_t head = 0;
  size_t len = 0;
  if (::syscall(SYS_get_robust_list, tid, &head, &len) < 0)
    fail_sys("cannot read the robust futex list of task {}", tid);
  thc->set_futex_rla(head);
  thc->set_futex_rla_len(static_cast<uint32_t>(len));

  int policy = ::sched_getscheduler(tid);
  if (policy < 0) fail_sys("cannot read the scheduling policy of task {}", tid);
  sched_param sp{};
  ::sched_getparam(tid, &sp);
  errno = 0;
  int nice = ::getpriority(PRIO_PROCESS, tid);
  thc->set_sched_policy(static_cast<uint32_t>(policy));
  thc->set_sched_prio(static_cast<uint32_t>(sp.sched_priority));
  thc->set_sched_nice(nice);
  seccomp.dump_thread(tid, st.seccomp, thc);
  if (st.no_new_privs) creds->set_no_new_privs(1);
  if (rseq_len > 0 && rseq.rseq_abi_pointer) {
    auto* r = thc->mutable_rseq_entry();
    r->set_rseq_abi_pointer(rseq.rseq_abi_pointer);
    r->set_rseq_abi_size(rseq.rseq_abi_size);
    r->set_signature(rseq.signature);
  }
  return st;
}

}  // namespace

std::vector<core_entry> dump_core(FrozenTask& t, SeccompTable& seccomp, CoreExtras* extras) {
  const pid_t pid = t.pid;
  std::vector<core_entry> cores(t.threads.size());
  for (auto& c : cores) c.set_mtype(core_entry::X86_64);
  const std::vector<proc::Vma> maps = proc::read_maps(pid);  // also for every probe's frame
  const Gadgets gadgets = find_gadgets(pid, maps);
  if (!gadgets.syscall)
    fail("task {}: no syscall instruction found in its executable mappings", pid);

  // Process-wide state, asked of the leader. Its scratch area serves the other threads.
  core_entry& core = cores[0];
  FrozenThread& leader = t.threads[0];
  auto* tc = core.mutable_tc();
  tc->set_task_state(t.stopped ? image::kTaskStopped : image::kTaskAlive);
  tc->set_exit_code(0);
  tc->set_flags(static_cast<uint32_t>(t.stat.flags));
  tc->set_comm(t.stat.comm);
  // Registers and masks first: the probes below change both for a while.
  std::vector<uint64_t> masks(t.threads.size());
  for (size_t i = 0; i < t.threads.size(); i++) {
    FrozenThread& th = t.threads[i];
    th.regs = arch::get_regs(th.tid);
    abort_rseq(th.tid, th.regs);
    th.regs_saved = true;
    if (ptrace(PTRACE_GETSIGMASK, th.tid, sizeof masks[i], &masks[i]) < 0)
      fail_sys("cannot read the signal mask of task {}", th.tid);
  }
  tc->set_blk_sigset(masks[0]);
  dump_signal_queue(pid, true, tc->mutable_signals_s());
  {
    interrupt_point();
    ThreadProbe probe(leader, gadgets, masks[0], &maps);
    RemoteTask& rt = probe.rt();
    if (fault_wanted("dump-stop-signal")) ::kill(pid, SIGSTOP);  // a stop asked mid-probe
    uint64_t s = rt.scratch();
    // Every disposition into its slot of the scratch area, read back at once.
    kernel::KernelSigaction all[kMaxSig];
    static_assert(sizeof all <= ThreadProbe::kScratch);
    for (int sig = 1; sig <= kMaxSig; sig++) {
      if (sig == SIGKILL || sig == SIGSTOP) continue;
      rt.check("rt_sigaction", SYS_rt_sigaction,
               {static_cast<uint64_t>(sig), 0, s + (sig - 1) * sizeof all[0], 8});
    }
    rt.read_mem(s, all, sizeof all);
    for (int sig = 1; sig <= kMaxSig; sig++) {
      if (sig == SIGKILL || sig == SIGSTOP) continue;
      const kernel::KernelSigaction& ka = all[sig - 1];
      auto* sa = tc->add_sigactions();
      sa->set_sigaction(ka.handler);
      sa->set_flags(ka.flags);
      sa->set_restorer(ka.restorer);
      sa->set_mask(ka.mask);
    }
    auto* timers = tc->mutable_timers();
    itimer_entry* which[3] = {timers->mutable_real(), timers->mutable_virt(),
                              timers->mutable_prof()};
    for (int w = 0; w < 3; w++)
      fill_itimer(which[w], check_out<itimerval>(rt, "getitimer", SYS_getitimer, w));
    dump_posix_timers(pid, rt, timers);
    extras->brk = rt.check("brk", SYS_brk, {0});
    rt.check("prctl(PR_GET_CHILD_SUBREAPER)", SYS_prctl, {PR_GET_CHILD_SUBREAPER, s});
    int subreaper = 0;
    rt.read_mem(s, &subreaper, sizeof subreaper);
    tc->set_child_subreaper(subreaper != 0);
    long dumpable = rt.syscall(SYS_prctl, {PR_GET_DUMPABLE});
    long thp = rt.syscall(SYS_prctl, {PR_GET_THP_DISABLE, 0, 0, 0, 0});
    extras->dumpable = dumpable >= 0 ? static_cast<int>(dumpable) : 1;
    if (uint32_t mb = membarrier_registrations(rt)) tc->set_membarrier_registration_mask(mb);
    extras->thp_disabled = thp > 0;
    extras->mlockall = mlockall_flags(rt, pid);
    probe_thread(rt, &core);  // the leader's own, in the same probe
  }
  for (size_t i = 0; i < t.threads.size(); i++) {
    proc::Status st = dump_thread(t, t.threads[i], masks[i], gadgets, maps, seccomp, &cores[i],
                                  /*probed=*/i == 0);
    if (i == 0) extras->umask = st.umask;
  }

  auto* rl = tc->mutable_rlimits();
  for (int r = 0; r < RLIM_NLIMITS; r++) {
    rlimit64 lim;
    if (::prlimit64(pid, static_cast<__rlimit_resource>(r), nullptr, &lim) < 0) {
      auto rows = proc::read_limits(pid);
      if (r >= static_cast<int>(rows.size())) fail_sys("cannot read limit {} of task {}", r, pid);
      lim.rlim_cur = rows[r].cur;
      lim.rlim_max = rows[r].max;
    }
    auto* e = rl->add_rlimits();
    e->set_cur(lim.rlim_cur);
    e->set_max(lim.rlim_max);
  }
  std::string pers = proc::read_file(fmt::format("/proc/{}/personality", pid));
  tc->set_personality(static_cast<uint32_t>(std::stoul(pers, nullptr, 16)));
  std::string oom = proc::read_file(fmt::format("/proc/{}/oom_score_adj", pid));
  tc->set_oom_score_adj(std::stoi(oom));
  // As CRIU on a kernel with audit: the login uid (4294967295 when never set).
  if (auto luid = proc::try_read_file(fmt::format("/proc/{}/loginuid", pid)))
    tc->set_loginuid(static_cast<uint32_t>(std::stoul(*luid)));
  // A SIGSTOP held back during the probes: the task is stopped, in the images and on release.
  for (const auto& th : t.threads)
    if (th.stop_requested && !t.stopped) t.stopped = true, t.stop_sig = SIGSTOP;
  if (t.stopped) {
    tc->set_task_state(image::kTaskStopped);
    tc->set_stop_signo(static_cast<uint32_t>(t.stop_sig ? t.stop_sig : SIGSTOP));
  }
  return cores;
}

}  // namespace cryo::dump
