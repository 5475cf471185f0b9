#include "dump/core.h"

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
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
#include "infect/probe_batch.h"
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

// POSIX timers from /proc/PID/timers; their times are asked of the task afterwards
// (ask_posix_timers).
void list_posix_timers(pid_t pid, task_timers_entry* timers) {
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
}

// timer_gettime and timer_getoverrun of each listed timer, queued on `q`; `fill` writes the
// answers once `q` ran.
struct PosixTimerQueries {
  std::vector<std::pair<size_t, size_t>> calls;
  PosixTimerQueries(ProbeBatch& q, const task_timers_entry& timers) {
    for (const auto& t : timers.posix())
      calls.emplace_back(q.add(SYS_timer_gettime, t.it_id(), ProbeBatch::out_of<itimerspec>()),
                         q.add(SYS_timer_getoverrun, t.it_id()));
  }
  void fill(const ProbeBatch& q, task_timers_entry* timers) const {
    for (int i = 0; i < timers->posix_size(); i++) {
      auto* t = timers->mutable_posix(i);
      q.result(calls[i].first).or_fail<long>("timer_gettime failed");
      const auto its = q.out<itimerspec>(calls[i].first);
      t->set_isec(its.it_interval.tv_sec);
      t->set_insec(its.it_interval.tv_nsec);
      t->set_vsec(its.it_value.tv_sec);
      t->set_vnsec(its.it_value.tv_nsec);
      t->set_overrun(q.result(calls[i].second).value_or<uint32_t>(0));
    }
  }
};

}  // namespace

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

namespace {

// The membarrier() commands the process registered for. Kernels before 6.3 cannot say: there
// each private expedited kind is probed by issuing its barrier, which fails with EPERM when
// unregistered; a global expedited registration cannot be seen at all.
// `got`: what MEMBARRIER_CMD_GET_REGISTRATIONS returned.
uint32_t membarrier_registrations(RemoteTask& rt, long got) {
  if (got >= 0) return static_cast<uint32_t>(got);
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

// What only the thread itself can tell, queued on `q`; `fill` writes the answers once `q` ran.
struct ThreadQueries {
  size_t tid_addr, sas, pdeath, slack, secbits;
  explicit ThreadQueries(ProbeBatch& q)
      : tid_addr(q.add(SYS_prctl, PR_GET_TID_ADDRESS, ProbeBatch::out_of<uint64_t>())),
        sas(q.add(SYS_sigaltstack, 0, ProbeBatch::out_of<stack_t>())),
        pdeath(q.add(SYS_prctl, PR_GET_PDEATHSIG, ProbeBatch::out_of<int>())),
        slack(q.add(SYS_prctl, PR_GET_TIMERSLACK)),
        secbits(q.add(SYS_prctl, PR_GET_SECUREBITS)) {}
  void fill(const ProbeBatch& q, core_entry* core) const {
    auto* ti = core->mutable_thread_info();
    auto* thc = core->mutable_thread_core();
    q.result(tid_addr).or_fail<long>("prctl(PR_GET_TID_ADDRESS) failed");
    ti->set_clear_tid_addr(q.out<uint64_t>(tid_addr));
    q.result(sas).or_fail<long>("sigaltstack failed");
    const auto ss = q.out<stack_t>(sas);
    auto* e = thc->mutable_sas();
    e->set_ss_sp(reinterpret_cast<uint64_t>(ss.ss_sp));
    e->set_ss_size(ss.ss_size);
    e->set_ss_flags(static_cast<uint32_t>(ss.ss_flags));
    q.result(pdeath).or_fail<long>("prctl(PR_GET_PDEATHSIG) failed");
    thc->set_pdeath_sig(q.out<int>(pdeath));
    const long ns = q.result(slack).raw();
    if (ns >= 0) thc->set_cryo_timerslack_ns(static_cast<uint64_t>(ns));
    thc->mutable_creds()->set_secbits(
        q.result(secbits).or_fail<uint32_t>("prctl(PR_GET_SECUREBITS) failed"));
  }
};

// State of one thread: registers, masks, per-thread attributes and credentials.
// `sigmask` is the thread's own mask and th.regs its own registers, read before any probe.
// `st` is its /proc status. `probed`: its ThreadQueries already ran (in the leader, within the
// probe of the process).
void dump_thread(FrozenTask& t, FrozenThread& th, uint64_t sigmask, const proc::Status& st,
                 const Gadgets& gadgets, const std::vector<proc::Vma>& maps, SeccompTable& seccomp,
                 core_entry* core, bool probed) {
  const pid_t tid = th.tid;
  std::string xstate = arch::get_xstate(tid);
  kernel::RseqConfig rseq{};
  long rseq_len =
      ptrace(static_cast<__ptrace_request>(PTRACE_GET_RSEQ_CONFIGURATION), tid, sizeof rseq, &rseq);

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
    // A handful of calls: one by one costs less than mapping room for a batch.
    ProbeBatch q(probe, st, sigmask, ProbeBatch::Mode::kOneByOne);
    ThreadQueries queries(q);
    q.run();
    queries.fill(q, core);
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
}

}  // namespace

std::vector<core_entry> dump_core(FrozenTask& t, SeccompTable& seccomp, CoreExtras* extras) {
  const pid_t pid = t.pid;
  std::vector<core_entry> cores(t.threads.size());
  for (auto& c : cores) c.set_mtype(core_entry::X86_64);
  const std::vector<proc::Vma>& maps = t.maps;  // also for every probe's frame
  const Gadgets gadgets = find_gadgets(pid, maps);
  if (!gadgets.syscall)
    fail("task {}: no syscall instruction found in its executable mappings", pid);

  // Process-wide state, asked of the leader.
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
  std::vector<proc::Status> statuses;
  for (const FrozenThread& th : t.threads) statuses.push_back(proc::read_status(th.tid));
  auto* timers = tc->mutable_timers();
  list_posix_timers(pid, timers);
  {
    interrupt_point();
    ThreadProbe probe(leader, gadgets, masks[0], &maps);
    RemoteTask& rt = probe.rt();
    if (fault_wanted("dump-stop-signal")) ::kill(pid, SIGSTOP);  // a stop asked mid-probe
    ProbeBatch q(probe, statuses[0], masks[0]);
    // A page of the batch's mapping that nothing touched tells whether mlockall(MCL_FUTURE)
    // is in force; without a batch, a page is mapped for that alone.
    const std::optional<uint64_t> fresh = q.spare_page();
    const uint64_t fresh_pme = fresh ? fresh_page_entry(pid, *fresh) : 0;
    size_t sigaction_at[kMaxSig + 1] = {};
    for (int sig = 1; sig <= kMaxSig; sig++)
      if (sig != SIGKILL && sig != SIGSTOP)
        sigaction_at[sig] =
            q.add(SYS_rt_sigaction, sig, 0, ProbeBatch::out_of<kernel::KernelSigaction>(), 8);
    size_t itimer_at[3];
    for (int w = 0; w < 3; w++)
      itimer_at[w] = q.add(SYS_getitimer, w, ProbeBatch::out_of<itimerval>());
    const PosixTimerQueries posix(q, *timers);
    const size_t brk = q.add(SYS_brk, 0);
    const size_t subreaper = q.add(SYS_prctl, PR_GET_CHILD_SUBREAPER, ProbeBatch::out_of<int>());
    const size_t dumpable = q.add(SYS_prctl, PR_GET_DUMPABLE);
    const size_t thp = q.add(SYS_prctl, PR_GET_THP_DISABLE, 0, 0, 0, 0);
    const size_t membarrier = q.add(SYS_membarrier, kernel::kMembarrierGetRegistrations, 0, 0);
    const size_t advice = fresh ? q.add(SYS_madvise, *fresh, kernel::kPageSize, MADV_DONTNEED) : 0;
    const ThreadQueries own(q);  // the leader's own, in the same probe
    q.run();

    for (int sig = 1; sig <= kMaxSig; sig++) {
      if (sig == SIGKILL || sig == SIGSTOP) continue;
      q.result(sigaction_at[sig]).or_fail<long>("rt_sigaction({}) failed", sig);
      const auto ka = q.out<kernel::KernelSigaction>(sigaction_at[sig]);
      auto* sa = tc->add_sigactions();
      sa->set_sigaction(ka.handler);
      sa->set_flags(ka.flags);
      sa->set_restorer(ka.restorer);
      sa->set_mask(ka.mask);
    }
    itimer_entry* which[3] = {timers->mutable_real(), timers->mutable_virt(),
                              timers->mutable_prof()};
    for (int w = 0; w < 3; w++) {
      q.result(itimer_at[w]).or_fail<long>("getitimer failed");
      fill_itimer(which[w], q.out<itimerval>(itimer_at[w]));
    }
    posix.fill(q, timers);
    extras->brk = q.result(brk).or_fail<uint64_t>("brk failed");
    q.result(subreaper).or_fail<long>("prctl(PR_GET_CHILD_SUBREAPER) failed");
    tc->set_child_subreaper(q.out<int>(subreaper) != 0);
    extras->dumpable = q.result(dumpable).value_or<int>(1);
    extras->thp_disabled = q.result(thp).value_or<long>(0) > 0;
    if (uint32_t mb = membarrier_registrations(rt, q.result(membarrier).raw()))
      tc->set_membarrier_registration_mask(mb);
    extras->mlockall = fresh ? mlockall_from_fresh_page(pid, fresh_pme, q.result(advice).raw())
                             : mlockall_flags(rt, pid);
    own.fill(q, &core);
    q.close();
  }
  for (size_t i = 0; i < t.threads.size(); i++)
    dump_thread(t, t.threads[i], masks[i], statuses[i], gadgets, maps, seccomp, &cores[i],
                /*probed=*/i == 0);
  extras->umask = statuses[0].umask;

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
