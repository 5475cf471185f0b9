#include "restore/tree.h"

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "base/error.h"
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

NewTree::NewTree(const Plan& plan) : plan_(plan), remote_(plan.tasks.size()) {}

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
  kernel::CloneArgs args{};
  args.exit_signal = SIGCHLD;
  args.set_tid = reinterpret_cast<uint64_t>(&want);
  args.set_tid_size = 1;
  long r = -1;
  for (int tries = 0; tries < 250; tries++) {
    r = kernel::clone3(&args);
    if (r >= 0 || errno != EEXIST) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a zombie not yet reaped
  }
  if (r == 0) {
    // The new task: stop under cryo's trace and wait to be shaped. Raw syscalls only: the C
    // library's view of this process is the parent's. cryo's own signal handlers must not
    // outlive the copy: an image that sets fewer sigactions leaves the rest at default.
    kernel::KernelSigaction dfl{};
    for (int sig = 1; sig <= 64; sig++)
      if (sig != SIGKILL && sig != SIGSTOP) ::syscall(SYS_rt_sigaction, sig, &dfl, nullptr, 8);
    ::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
    ::syscall(SYS_kill, ::syscall(SYS_getpid), SIGSTOP);
    ::syscall(SYS_exit_group, 127);
  }
  if (r < 0) fail_sys("cannot create task {} (clone3 with set_tid)", want);
  created_.push_back(want);
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

void NewTree::fork_child(size_t i) {
  const TaskPlan& t = plan_.tasks[i];
  RemoteTask& parent = *remote_[t.parent];
  pid_t want = t.pid();
  kernel::CloneArgs args{};
  args.exit_signal = SIGCHLD;
  // A task that shared its parent's fd table (clone with CLONE_FILES) shares it again.
  if (shares_parent_files(plan_, t)) args.flags |= CLONE_FILES;
  args.set_tid = parent.scratch() + 1024;
  args.set_tid_size = 1;
  parent.put(1024, &want, sizeof want);
  uint64_t a = parent.put(0, &args, sizeof args);
  long r = -EEXIST;
  for (int tries = 0; tries < 250 && r == -EEXIST; tries++) {
    r = parent.syscall(SYS_clone3, {a, sizeof args});
    if (r == -EEXIST) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (r < 0)
    fail_errno(static_cast<int>(-r), "cannot create task {} in parent {} (clone3)", want,
               parent.tid());
  if (r != want) fail("task {} was created with PID {}", want, r);
  created_.push_back(want);
  WaitStatus ws = wait_task(want);
  if (!ws.stopped()) fail("new task {} {} before cryo could trace it", want, ws.str());
  remote_[i] = std::make_unique<RemoteTask>(want, parent.gadget());
  remote_[i]->adopt_scratch(parent.scratch(), parent.scratch_len());
  log::debug("created task {} in parent {}", want, parent.tid());
}

void NewTree::create(Ttys& ttys, const std::function<void(size_t)>& shape) {
  const TaskPlan& root = plan_.tasks[0];
  fork_root();
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
  for (size_t i = 0; i < plan_.tasks.size(); i++) {
    const TaskPlan& t = plan_.tasks[i];
    if (t.ps.pgid() == t.ps.pid()) continue;
    if (plan_.find(static_cast<pid_t>(t.ps.pgid())) >= 0) {
      remote_[i]->check("setpgid", SYS_setpgid, {0, t.ps.pgid()});
    } else if (t.ps.pgid() != root.ps.pgid()) {
      fail("task {}: process group {} is led from outside the tree: not supported yet", t.pid(),
           t.ps.pgid());
    }
    // else: a shell job's group, inherited from cryo.
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
                  t.pid());
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
      fail_sys("cannot let zombie {} exit", z.tid());
    for (;;) {
      WaitStatus ws = wait_task(z.tid());
      if (ws.gone()) break;
      ptrace(PTRACE_CONT, z.tid(), nullptr, ws.event() ? 0 : ws.stop_sig());
    }
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
    kernel::CloneArgs args{};
    args.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
    args.exit_signal = 0;
    args.set_tid = leader.scratch() + 1024;
    args.set_tid_size = 1;
    leader.put(1024, &want, sizeof want);
    uint64_t a = leader.put(0, &args, sizeof args);
    long r = leader.syscall(SYS_clone3, {a, sizeof args});
    if (r < 0)
      fail_errno(static_cast<int>(-r), "cannot create thread {} of task {} (clone3)", want,
                 t.pid());
    if (r != want) fail("thread {} was created with TID {}", want, r);
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

void NewTree::release(bool leave_stopped) {
  for (auto& th : threads_)
    if (ptrace(PTRACE_DETACH, th->tid(), nullptr, 0) < 0)
      fail_sys("cannot release thread {}", th->tid());
  for (size_t i = 0; i < plan_.tasks.size(); i++) {
    if (!remote_[i]) continue;
    const TaskPlan& t = plan_.tasks[i];
    bool stop = leave_stopped || t.core.tc().task_state() == image::kTaskStopped;
    if (stop) ::kill(t.pid(), SIGSTOP);
    if (ptrace(PTRACE_DETACH, t.pid(), nullptr, 0) < 0) fail_sys("cannot release task {}", t.pid());
  }
  released_ = true;
}

}  // namespace cryo::restore
