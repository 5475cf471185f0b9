#include "restore/tree.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <thread>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "image/image.h"
#include "kernel/syscalls.h"
#include "proc/proc.h"

namespace cryo::restore {
namespace {

constexpr uint64_t kScratchLen = 64 * 1024;

std::vector<std::pair<uint64_t, uint64_t>> vma_ranges(const mm_entry& mm) {
  std::vector<std::pair<uint64_t, uint64_t>> r;
  for (const auto& v : mm.vmas()) r.emplace_back(v.start(), v.end());
  return r;
}

}  // namespace

uint64_t pick_free(const std::vector<std::pair<uint64_t, uint64_t>>& busy, uint64_t len) {
  // Low addresses above mmap_min_addr are rarely used by programs; scan upwards from 1 GiB.
  for (uint64_t a = 0x40000000; a < 0x7ff000000000; a += 0x100000) {
    bool clash = false;
    for (const auto& [s, e] : busy)
      if (a < e + 0x10000 && s < a + len + 0x10000) {
        clash = true;
        break;
      }
    if (!clash) return a;
  }
  fail("no free address range of {} bytes for cryo's scratch area", len);
}

NewTree::NewTree(const Plan& plan, MountTree* mounts)
    : plan_(plan), mounts_(mounts), ns_(plan), timens_(plan), remote_(plan.tasks.size()) {}

NewTree::~NewTree() {
  if (!released_) kill_all();
}

void NewTree::kill_all() {
  if (created_.empty()) return;
  log::info("restore failed: killing the {} task(s) created so far", created_.size());
  for (pid_t pid : created_) ::kill(pid, SIGKILL);
  // A leader is reported dead only after its other threads: wait for those first.
  Deadline deadline(kTaskWait);
  for (auto it = created_.rbegin(); it != created_.rend(); ++it)
    if (!wait_gone(*it, deadline))
      log::warn("killed task {} has not ended yet ({})", *it, proc::describe_state(*it));
  created_.clear();
}

void NewTree::fork_root() {
  const TaskPlan& t = plan_.tasks[0];
  pid_t want = t.pid();
  const std::vector<pid_t> ids = ns_.set_tid(0, 0);
  kernel::CloneArgs args{};
  args.flags = ns_.clone_flags(0);
  args.exit_signal = SIGCHLD;
  if (mounts_) args.flags |= mounts_->clone_flags();
  args.set_tid = reinterpret_cast<uint64_t>(ids.data());
  args.set_tid_size = ids.size();
  // --restore-sibling: the root is a child of cryo's parent (runc waits for its container's
  // init). It cannot ask its parent to trace it: it waits on a pipe for cryo to seize it, and
  // ends when the pipe's writer (cryo) is gone.
  int gate[2] = {-1, -1};
  if (sibling_) {
    args.flags |= CLONE_PARENT;
    args.exit_signal = 0;  // clone3 wants none: the child gets cryo's own (SIGCHLD)
    if (::pipe2(gate, O_CLOEXEC) < 0) fail_sys("cannot make a pipe for the root task");
  }
  const pid_t cryo = ::getpid();
  const pid_t parent = sibling_ ? ::getppid() : cryo;
  // The new task: stop under cryo's trace and wait to be shaped. Raw syscalls only: the C
  // library's view of this process is the parent's. cryo's own signal handlers must not
  // outlive the copy: an image that sets fewer sigactions leaves the rest at default.
  // Until cryo sets PTRACE_O_EXITKILL, a cryo killed now would leave this task stopped
  // forever: it dies with cryo instead (cleared for the root before release).
  // (The init of a new pid namespace sees its parent as 0.)
  auto child = [&]() {
    ::syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);
    const long ppid = ::syscall(SYS_getppid);
    if (ppid != parent && ppid != 0) ::syscall(SYS_exit_group, 127);
    kernel::KernelSigaction dfl{};
    for (int sig = 1; sig <= 64; sig++)
      if (sig != SIGKILL && sig != SIGSTOP) ::syscall(SYS_rt_sigaction, sig, &dfl, nullptr, 8);
    if (sibling_) {
      char c;
      ::syscall(SYS_close, gate[1]);
      ::syscall(SYS_read, gate[0], &c, 1);  // until cryo's PTRACE_INTERRUPT or cryo's end
    } else {
      ::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
      ::syscall(SYS_kill, ::syscall(SYS_getpid), SIGSTOP);
    }
    ::syscall(SYS_exit_group, 127);
  };
  auto spawn = [&]() {
    long r = -1;
    for (int tries = 0; tries < 250; tries++) {
      r = kernel::clone3(&args);
      if (r >= 0 || errno != EEXIST) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a zombie not yet reaped
    }
    if (r == 0) child();
    return r;
  };
  const long r = spawn();
  if (r < 0) fail_sys("cannot create task {} (clone3 with set_tid)", want);
  created_.push_back(want);
  const Fd gate_r(gate[0]), gate_w(gate[1]);  // kept until the root is stopped
  if (sibling_) {
    if (ptrace(PTRACE_SEIZE, want, nullptr, kTraceOptions) < 0 ||
        ptrace(PTRACE_INTERRUPT, want, nullptr, nullptr) < 0)
      fail_sys("cannot trace new task {} (a child of cryo's parent {})", want, parent);
  }
  WaitStatus ws = wait_task(want);
  if (!ws.stopped()) fail("new task {} {} before cryo could trace it", want, ws.str());
  if (ptrace(PTRACE_SETOPTIONS, want, nullptr, kTraceOptions) < 0)
    fail_sys("cannot set ptrace options on task {}", want);
  remote_[0] = std::make_unique<RemoteTask>(want, find_syscall_gadget(want));

  // A scratch area for clone3 arguments, inherited by every task forked below. It must be
  // free in cryo's own layout and in the root's final one.
  auto busy = vma_ranges(t.mm);
  for (const auto& v : proc::read_maps(getpid())) busy.emplace_back(v.start, v.end);
  tree_scratch_ = remote_[0]->map_scratch(kScratchLen, pick_free(busy, kScratchLen));
  log::debug("created root task {}", want);
}

std::unique_ptr<RemoteTask> NewTree::clone_in(RemoteTask& parent, const std::vector<pid_t>& ids,
                                              uint64_t flags, const char* what, bool below) {
  const pid_t want = ids.back();
  kernel::CloneArgs args{};
  args.flags = flags;
  args.exit_signal = SIGCHLD;
  args.set_tid = parent.scratch() + 1024;
  args.set_tid_size = ids.size();
  parent.put(1024, ids.data(), ids.size() * sizeof(pid_t));
  uint64_t a = parent.put(0, &args, sizeof args);
  long r = -EEXIST;
  for (int tries = 0; tries < 250 && r == -EEXIST; tries++) {
    r = parent.syscall(SYS_clone3, {a, sizeof args});
    if (r == -EEXIST) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (r < 0)
    fail_errno(static_cast<int>(-r), "cannot create {} {} in parent {} (clone3)", what, want,
               parent.tid());
  // clone3 returns the PID in the parent's namespace: the child's own, or the one above it
  // when the child is the init of a new one.
  const pid_t seen = ids[below && ids.size() > 1 ? 1 : 0];
  if (r != seen)
    fail("{} {} was created with PID {} in its parent's pid namespace, not {}", what, want, r,
         seen);
  created_.push_back(want);
  WaitStatus ws = wait_task(want);
  if (!ws.stopped()) fail("new {} {} {} before cryo could trace it", what, want, ws.str());
  auto rt = std::make_unique<RemoteTask>(want, parent.gadget());
  rt->adopt_scratch(parent.scratch(), parent.scratch_len());
  log::debug("created {} {} in parent {}", what, want, parent.tid());
  return rt;
}

void NewTree::fork_child(size_t i) {
  const TaskPlan& t = plan_.tasks[i];
  // A task that shared its parent's fd table (clone with CLONE_FILES) shares it again.
  uint64_t flags = (shares_parent_files(plan_, t) ? CLONE_FILES : 0) | ns_.clone_flags(i);
  RemoteTask& parent = *remote_[t.parent];
  if (ns_.parent_unshares(i)) parent.check("unshare(CLONE_NEWPID)", SYS_unshare, CLONE_NEWPID);
  remote_[i] = clone_in(parent, ns_.set_tid(i, 0), flags, "task", ns_.below_parent(i));
}

void NewTree::exit_task(RemoteTask& z, int status) {
  arch::Regs r = z.saved_regs();
  int cont_sig = 0;
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    if (sig != SIGKILL && sig != SIGSTOP) {
      kernel::KernelSigaction dfl{};
      uint64_t a = z.put(0, &dfl, sizeof dfl);
      z.check("rt_sigaction", SYS_rt_sigaction, {static_cast<uint64_t>(sig), a, 0, 8});
    }
    cont_sig = sig;
    // Never a core file of the dying stand-in (its memory is not the dumped one's). The
    // core bit of the wait status is therefore lost.
    rlimit no_core{0, 0};
    if (::prlimit(z.tid(), RLIMIT_CORE, &no_core, nullptr) < 0)
      fail_sys("cannot disable core dumps of zombie {}", z.tid());
    if (WCOREDUMP(status))
      log::warn("task {} dumped core when it died: its restored wait status says it did not",
                z.tid());
    r.rip = z.gadget();
    r.rax = SYS_getpid;
  } else {
    r.rip = z.gadget();
    r.rax = SYS_exit_group;
    r.rdi = WEXITSTATUS(status);
  }
  r.orig_rax = static_cast<uint64_t>(-1L);
  arch::set_regs(z.tid(), r);
  if (ptrace(PTRACE_CONT, z.tid(), nullptr, cont_sig) < 0)
    fail_sys("cannot let task {} exit", z.tid());
  for (;;) {
    WaitStatus ws = wait_task(z.tid());
    if (ws.gone()) break;
    ptrace(PTRACE_CONT, z.tid(), nullptr, ws.event() ? 0 : ws.stop_sig());
  }
}

void NewTree::create(Ttys& ttys, const std::function<void(size_t)>& shape) {
  const TaskPlan& root = plan_.tasks[0];
  fork_root();
  if (mounts_) mounts_->build(*remote_[0]);
  ns_.fill(*remote_[0], 0);
  timens_.place(*remote_[0], root);
  // Sessions and their controlling terminals are set as each task is created, so its
  // children inherit them.
  if (root.ps.sid() == root.ps.pid()) {
    remote_[0]->check("setsid", SYS_setsid);
    ttys.attach_ctty(*remote_[0]);
  }
  if (!root.zombie) shape(0);
  for (size_t i = 1; i < plan_.tasks.size(); i++) {
    const TaskPlan& t = plan_.tasks[i];
    fork_child(i);
    ns_.fill(*remote_[i], i);
    timens_.place(*remote_[i], t);
    if (t.ps.sid() == t.ps.pid()) {
      remote_[i]->check("setsid", SYS_setsid);
      ttys.attach_ctty(*remote_[i]);
    } else if (t.ps.sid() != plan_.tasks[t.parent].ps.sid()) {
      fail(
          "task {}: session {} differs from its parent's and it does not lead it: not "
          "supported yet",
          t.pid(), t.ps.sid());
    }
    if (!t.zombie) shape(i);
  }
  // Groups: leaders first, then members.
  for (size_t i = 0; i < plan_.tasks.size(); i++) {
    const TaskPlan& t = plan_.tasks[i];
    if (t.ps.pgid() == t.ps.pid() && t.ps.sid() != t.ps.pid())
      remote_[i]->check("setpgid", SYS_setpgid, {0, 0});
  }
  // A group whose leader is gone (or outside the tree) gets a helper with the leader's PID,
  // created by the first member's parent; it leads the group while the members join it.
  struct Helper {
    std::unique_ptr<RemoteTask> rt;
    size_t parent;
  };
  std::map<pid_t, Helper> helpers;
  for (size_t i = 0; i < plan_.tasks.size(); i++) {
    const TaskPlan& t = plan_.tasks[i];
    const auto pgid = static_cast<pid_t>(t.ps.pgid());
    if (pgid == t.pid()) continue;
    if (needs_group_helper(plan_, t) && !helpers.contains(pgid)) {
      const auto parent = static_cast<size_t>(t.parent);
      if (plan_.tasks[parent].ps.cryo_ns_pid_size() > 0)
        fail(
            "task {}: its process group {} has no leader left, in a nested pid namespace, whose "
            "PIDs there the images do not give: not supported",
            t.pid(), pgid);
      Helper h{clone_in(*remote_[parent], {pgid}, 0, "helper task leading process group"), parent};
      h.rt->check("setpgid", SYS_setpgid, {0, 0});
      helpers.emplace(pgid, std::move(h));
    }
    if (plan_.find(pgid) >= 0 || needs_group_helper(plan_, t)) {
      const pid_t seen = ns_.pid_seen_by(i, pgid);
      if (seen)
        remote_[i]->check("setpgid", SYS_setpgid, {0, static_cast<uint64_t>(seen)});
      else if (proc::read_stat(t.pid()).pgrp != pgid)  // only inherited: no name for it inside
        fail(
            "task {}: its process group {} is led from outside its pid namespace, and it was "
            "not born in it: not supported",
            t.pid(), pgid);
    }
    // else: a shell job's group, inherited from cryo.
  }
  // The groups live on without their helpers, which end and are reaped by their parents
  // (whose SIGCHLD, an artifact of the restore, is taken and dropped).
  for (auto& [pgid, h] : helpers) {
    exit_task(*h.rt, 0);
    RemoteTask& parent = *remote_[h.parent];
    parent.check("wait4 of a group helper", SYS_wait4, {static_cast<uint64_t>(pgid), 0, __WALL, 0});
    std::erase(created_, pgid);
    parent.syscall(SYS_getpid);
    log::debug("process group {} stands without its leader, as dumped", pgid);
  }
  for (size_t i = 0; i < plan_.tasks.size(); i++)
    if (plan_.tasks[i].ps.sid() == plan_.tasks[i].ps.pid()) ttys.set_foreground(*remote_[i]);
  // Zombies: end each with its dumped wait status.
  std::vector<size_t> zombie_parents;
  for (size_t i = 0; i < plan_.tasks.size(); i++) {
    const TaskPlan& t = plan_.tasks[i];
    if (!t.zombie) continue;
    RemoteTask& z = *remote_[i];
    int status = static_cast<int>(t.core.tc().exit_code());
    exit_task(z, status);
    remote_[i].reset();
    zombie_parents.push_back(static_cast<size_t>(t.parent));
    log::debug("task {} is a zombie again (status {:#x})", t.pid(), status);
  }
  // Their SIGCHLD is an artifact of the restore: let each parent take and drop it now.
  for (size_t p : zombie_parents) remote_[p]->syscall(SYS_getpid);
}

std::vector<RemoteTask*> NewTree::create_threads(size_t i) {
  const TaskPlan& t = plan_.tasks[i];
  RemoteTask& leader = *remote_[i];
  std::vector<RemoteTask*> all{&leader};
  for (int k = 1; k < t.ps.threads_size(); k++) {
    pid_t want = static_cast<pid_t>(t.ps.threads(k));
    const std::vector<pid_t> ids = ns_.set_tid(i, static_cast<size_t>(k));
    kernel::CloneArgs args{};
    args.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
    args.exit_signal = 0;
    args.set_tid = leader.scratch() + 1024;
    args.set_tid_size = ids.size();
    leader.put(1024, ids.data(), ids.size() * sizeof(pid_t));
    uint64_t a = leader.put(0, &args, sizeof args);
    long r = leader.syscall(SYS_clone3, {a, sizeof args});
    if (r < 0)
      fail_errno(static_cast<int>(-r), "cannot create thread {} of task {} (clone3)", want,
                 t.pid());
    if (r != ids.front()) fail("thread {} was created with TID {} in its namespace", want, r);
    created_.push_back(want);
    WaitStatus ws = wait_task(want);
    if (!ws.stopped()) fail("new thread {} {} before cryo could trace it", want, ws.str());
    auto th = std::make_unique<RemoteTask>(want, leader.gadget());
    th->set_tgid(t.pid());
    th->adopt_scratch(leader.scratch(), leader.scratch_len());
    all.push_back(th.get());
    threads_.push_back(std::move(th));
    log::debug("created thread {} of task {}", want, t.pid());
  }
  return all;
}

namespace {

// True when no member of process group `pgid` has a parent in another group of the same
// session: the kernel then discards SIGTSTP, SIGTTIN and SIGTTOU sent to the group's tasks.
bool pgrp_orphaned(pid_t pgid) {
  auto stat_of = [](pid_t pid) -> std::optional<proc::Stat> {
    auto text = proc::try_read_file(fmt::format("/proc/{}/stat", pid));
    if (!text) return std::nullopt;
    try {
      return proc::parse_stat(*text);
    } catch (const Error&) {
      return std::nullopt;
    }
  };
  for (int pid : proc::list_dir_numbers("/proc")) {
    auto s = stat_of(pid);
    if (!s || s->pgrp != pgid || s->state == 'Z' || s->ppid <= 1) continue;
    auto parent = stat_of(s->ppid);
    if (parent && parent->pgrp != pgid && parent->session == s->session) return false;
  }
  return true;
}

// The signal that stops task `t` again on release: the one that stopped it when dumped.
int stop_signal(const TaskPlan& t) {
  const task_core_entry& tc = t.core.tc();
  const int sig = tc.has_stop_signo() ? static_cast<int>(tc.stop_signo()) : SIGSTOP;
  if (sig != SIGSTOP && sig != SIGTSTP && sig != SIGTTIN && sig != SIGTTOU) {
    log::warn("task {}: image core-{}.img names {} as its stop signal: stopped with SIGSTOP",
              t.pid(), t.pid(), sig);
    return SIGSTOP;
  }
  if (sig != SIGSTOP && pgrp_orphaned(static_cast<pid_t>(t.ps.pgid()))) {
    log::warn(
        "task {} was stopped by {} when dumped; its process group {} is orphaned now, where "
        "that signal would be discarded: stopped with SIGSTOP instead",
        t.pid(), sigabbrev_np(sig), t.ps.pgid());
    return SIGSTOP;
  }
  return sig;
}

// Lets a restored thread go. One released before it may already have ended the whole process
// (exit_group, a fatal signal): then it is gone or dying, and that is the process's own doing.
void detach(pid_t tid, const char* what) {
  if (ptrace(PTRACE_DETACH, tid, nullptr, 0) == 0) return;
  const int err = errno;
  if (err == ESRCH) {
    auto stat = proc::try_read_file(fmt::format("/proc/{}/stat", tid));
    const size_t paren = stat ? stat->rfind(')') : std::string::npos;
    const char state =
        paren != std::string::npos && paren + 2 < stat->size() ? (*stat)[paren + 2] : 'X';
    if (state == 'Z' || state == 'X') {
      log::info("{} {} ended on its own while the tree was released", what, tid);
      return;
    }
  }
  fail_errno(err, "cannot release {} {}", what, tid);
}

}  // namespace

void NewTree::release(bool leave_stopped) {
  // Stop signals first, while every thread is still traced: each thread then takes the stop
  // as it leaves its trace stop, before it runs a single instruction of its own.
  for (size_t i = 0; i < plan_.tasks.size(); i++) {
    if (!remote_[i]) continue;
    const TaskPlan& t = plan_.tasks[i];
    if (t.core.tc().task_state() == image::kTaskStopped)
      ::kill(t.pid(), stop_signal(t));
    else if (leave_stopped)
      ::kill(t.pid(), SIGSTOP);
  }
  for (auto& th : threads_) detach(th->tid(), "thread");
  for (size_t i = 0; i < plan_.tasks.size(); i++) {
    if (!remote_[i]) continue;
    const TaskPlan& t = plan_.tasks[i];
    detach(t.pid(), "task");
  }
  released_ = true;
}

}  // namespace cryo::restore
