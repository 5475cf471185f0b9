#include "infect/frozen_tree.h"

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <deque>

#include "base/error.h"
#include "base/fd.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "infect/wait_status.h"
#include "kernel/syscalls.h"

namespace cryo {
namespace {

// Syscall stops marked, so that one left behind by a killed cryo carries no signal.
constexpr long kSeizeOptions = PTRACE_O_TRACESYSGOOD;

}  // namespace

FrozenTree::FrozenTree(pid_t root, unsigned timeout_s, TreeFreezer* freezer)
    : timeout_s_(timeout_s), deadline_(std::chrono::seconds(timeout_s)) {
  if (root <= 0) fail("invalid PID {}: give the PID of the tree's root task with -t", root);
  if (::kill(root, 0) < 0 && errno == ESRCH)
    fail("no process with PID {}: check the PID given with -t", root);
  try {
    if (freezer) {
      freezer->freeze();
      preseize(root);
      freezer->thaw();
    }
    std::deque<pid_t> queue{root};
    while (!queue.empty()) {
      pid_t pid = queue.front();
      queue.pop_front();
      FrozenTask t;
      t.pid = pid;
      proc::Status st = proc::read_status(pid);
      if (st.tracer_pid != 0 && st.tracer_pid != getpid()) {
        std::string comm = "?";
        try {
          comm = proc::read_stat(st.tracer_pid).comm;
        } catch (const Error&) {
        }
        fail("task {} ({}) is traced by process {} ({}): detach that tracer and retry", pid,
             st.name, st.tracer_pid, comm);
      }
      t.stat = proc::read_stat(pid);
      if ((t.stat.state == 'Z' || t.stat.state == 'X') && proc::read_threads(pid).size() > 1)
        fail(
            "task {} ({}): its main thread has exited while other threads run: not supported "
            "yet",
            pid, st.name);
      if (t.stat.state == 'Z' || t.stat.state == 'X') {
        t.zombie = true;
        t.exit_status = t.stat.exit_code;
      } else {
        try {
          seize_threads(t);
        } catch (const Error&) {
          // It may have exited between the look and the seize: then it is a zombie now (a
          // child of a task already frozen cannot be reaped meanwhile).
          auto now = proc::try_read_file(fmt::format("/proc/{}/stat", pid));
          if (!now || t.threads.size() > 0) throw;
          t.stat = proc::parse_stat(*now);
          if (t.stat.state != 'Z' && t.stat.state != 'X') throw;
          t.zombie = true;
          t.exit_status = t.stat.exit_code;
          t.ppid = t.stat.ppid;
          t.pgid = t.stat.pgrp;
          t.sid = t.stat.session;
          tasks_.push_back(std::move(t));
          continue;
        }
        t.stat = proc::read_stat(pid);  // stable now that the task is stopped
        // A group stop is also told by the stop's signal (seized in a frozen tree, the task
        // was in its ptrace stop already when its state was read).
        t.stopped = st.state == 'T' || t.stop_sig != 0;
        // Children belong to the thread that forked them.
        for (const auto& th : t.threads)
          for (pid_t c : proc::read_children(pid, th.tid)) t.children.push_back(c);
        for (pid_t c : t.children) queue.push_back(c);
      }
      t.ppid = t.stat.ppid;
      t.pgid = t.stat.pgrp;
      t.sid = t.stat.session;
      tasks_.push_back(std::move(t));
    }
  } catch (...) {
    if (freezer) {
      try {
        freezer->thaw();  // the seized threads must reach their stop to be let go
      } catch (const Error& e) {
        log::warn("{}", e.what());
      }
    }
    release(false);
    throw;
  }
  log::info("froze {} task(s) of the tree of {}", tasks_.size(), root);
}

void FrozenTree::preseize(pid_t root) {
  std::deque<pid_t> queue{root};
  while (!queue.empty()) {
    pid_t pid = queue.front();
    queue.pop_front();
    auto stat = proc::try_read_file(fmt::format("/proc/{}/stat", pid));
    if (!stat || proc::parse_stat(*stat).state == 'Z') continue;  // the walk takes zombies
    for (pid_t tid : proc::read_threads(pid)) {
      // One traced by another, or an io_uring worker, is left to the walk, which says why.
      if (proc::is_io_worker(pid, tid) || ptrace(PTRACE_SEIZE, tid, nullptr, kSeizeOptions) < 0)
        continue;
      seized_.push_back(tid);
      preseized_.push_back(tid);
      if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) < 0)
        fail_sys("cannot interrupt task {}", tid);
      for (pid_t c : proc::read_children(pid, tid)) queue.push_back(c);
    }
  }
  log::debug("seized {} thread(s) of the frozen tree", preseized_.size());
}

int FrozenTree::seize(pid_t pid) {
  auto pre = std::find(preseized_.begin(), preseized_.end(), pid);
  if (pre != preseized_.end()) {
    preseized_.erase(pre);  // seized and interrupted while the tree was frozen
  } else if (ptrace(PTRACE_SEIZE, pid, nullptr, kSeizeOptions) < 0) {
    // Never PTRACE_O_EXITKILL: if cryo dies, the kernel detaches the tree and it runs on.
    if (errno == ESRCH) fail("task {} vanished while the tree was being frozen", pid);
    fail_sys("cannot seize task {} with ptrace", pid);
  } else {
    seized_.push_back(pid);
    if (ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr) < 0)
      fail_sys("cannot interrupt task {}", pid);
  }
  for (;;) {
    WaitStatus ws = wait_stop(pid);
    if (ws.gone()) fail("task {} {} while it was being frozen", pid, ws.str());
    if (ws.event() == PTRACE_EVENT_STOP) {
      log::debug("seized task {}", pid);
      return ws.stop_sig();  // a group stop reports its signal, an interrupt SIGTRAP
    }
    // A signal arrived first: let it be delivered as it would have been, then stop again.
    int sig = ws.event() ? 0 : ws.stop_sig();
    if (ptrace(PTRACE_CONT, pid, nullptr, sig) < 0) fail_sys("cannot resume task {}", pid);
    if (ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr) < 0)
      fail_sys("cannot interrupt task {}", pid);
  }
}

// A task stops for ptrace only on its way back to user space: one in an uninterruptible
// sleep (D state: I/O, a vfork parent waiting for its child) may never get there.
WaitStatus FrozenTree::wait_stop(pid_t tid) {
  for (;;) {
    // In slices, so that a stop signal aborts the freeze.
    if (auto ws = try_wait_task(tid, Deadline(std::chrono::milliseconds(50)))) return *ws;
    interrupt_point();
    if (deadline_.expired()) {
      unstopped_ = tid;
      std::string state = proc::describe_state(tid);
      fail(
          "task {} did not stop within {} s ({}){}: retry when it can be interrupted, or give a "
          "longer --timeout",
          tid, timeout_s_, state,
          state.starts_with("state D")
              ? "; it is in an uninterruptible sleep (I/O, or a vfork parent waiting for its "
                "child)"
              : "");
    }
  }
}

// Seizes every thread of a process, again until no new thread appears. io_uring's kernel
// threads (iou-sqp-*, iou-wrk-*) are only noted: they never return to user space, so a
// remote syscall in one would wait forever; the dump refuses their ring later.
void FrozenTree::seize_threads(FrozenTask& t) {
  for (;;) {
    bool added = false;
    for (pid_t tid : proc::read_threads(t.pid)) {
      bool known = std::any_of(t.threads.begin(), t.threads.end(),
                               [&](const FrozenThread& th) { return th.tid == tid; }) ||
                   std::find(t.io_workers.begin(), t.io_workers.end(), tid) != t.io_workers.end();
      if (known) continue;
      if (tid != t.pid && proc::is_io_worker(t.pid, tid)) {
        t.io_workers.push_back(tid);
        log::debug("task {}: thread {} is an io_uring worker: not seized", t.pid, tid);
        continue;
      }
      try {
        int sig = seize(tid);
        if (tid == t.pid && sig != SIGTRAP) t.stop_sig = sig;
      } catch (const Error&) {
        if (tid != t.pid && ::access(fmt::format("/proc/{}/task/{}", t.pid, tid).c_str(), F_OK) < 0)
          continue;  // the thread exited meanwhile
        throw;
      }
      // cryo's remote syscalls must not meet the thread's seccomp filters.
      if (proc::read_status(tid).seccomp != 0 &&
          ptrace(PTRACE_SETOPTIONS, tid, nullptr, kSeizeOptions | PTRACE_O_SUSPEND_SECCOMP) < 0)
        fail_sys(
            "task {} runs under seccomp and cryo cannot suspend its filters (cryo needs "
            "CAP_SYS_ADMIN and no seccomp filter of its own)",
            tid);
      FrozenThread th;
      th.tid = tid;
      if (tid == t.pid)
        t.threads.insert(t.threads.begin(), th);
      else
        t.threads.push_back(th);
      added = true;
    }
    if (!added) break;
  }
  if (t.threads.empty() || t.threads[0].tid != t.pid)
    fail("task {}: its main thread has exited while other threads run: not supported yet", t.pid);
}

FrozenThread* FrozenTree::find_thread(pid_t tid) {
  for (auto& t : tasks_)
    for (auto& th : t.threads)
      if (th.tid == tid) return &th;
  return nullptr;
}

FrozenTask* FrozenTree::find(pid_t pid) {
  for (auto& t : tasks_)
    if (t.pid == pid) return &t;
  return nullptr;
}

bool FrozenTree::contains(pid_t pid) const {
  return std::any_of(tasks_.begin(), tasks_.end(), [&](const auto& t) { return t.pid == pid; });
}

void FrozenTree::release(bool stop_all) {
  for (pid_t pid : seized_) {
    FrozenThread* th = find_thread(pid);
    if (th && th->regs_saved) {
      if (ptrace(PTRACE_SETREGS, pid, nullptr, &th->regs) < 0)
        log::warn("cannot put back the registers of task {}: {}", pid, strerror(errno));
    }
    FrozenTask* t = find(pid);
    if (stop_all || (t && t->stopped))
      ::kill(pid, t && t->stopped && t->stop_sig ? t->stop_sig : SIGSTOP);
    auto pre = std::find(preseized_.begin(), preseized_.end(), pid);
    if (pre != preseized_.end()) {
      // Interrupted in a frozen tree, now thawed: PTRACE_DETACH needs it in its stop.
      preseized_.erase(pre);
      if (!try_wait_task(pid, Deadline(std::chrono::seconds(1)))) unstopped_ = pid;
    }
    if (pid == unstopped_) {
      // PTRACE_DETACH needs a stopped tracee: the kernel detaches it when cryo exits.
      log::debug("task {} never stopped: it is detached when cryo exits", pid);
      continue;
    }
    if (ptrace(PTRACE_DETACH, pid, nullptr, 0) < 0)
      log::warn("cannot detach from task {}: {}", pid, strerror(errno));
  }
  seized_.clear();
}

void FrozenTree::commit(End how) {
  committed_ = true;
  if (how == End::kKill) {
    std::vector<Fd> pidfds;
    for (const auto& t : tasks_)
      if (!t.zombie) pidfds.emplace_back(kernel::pidfd_open(t.pid));
    for (const auto& t : tasks_)
      if (!t.zombie) ::kill(t.pid, SIGKILL);
    ended_ = std::chrono::steady_clock::now();
    // The teardown of a large memory takes long (~0.25 s a GiB): cryo frees it too, along with
    // the dying task, so its PIDs are free sooner for a restore on this host.
    for (const Fd& p : pidfds)
      if (p && kernel::process_mrelease(p.get()) < 0 && errno != ESRCH && errno != EINVAL)
        log::debug("process_mrelease: {}", strerror(errno));
    // A leader is reported dead only after its other threads: wait for those first. A
    // thread already reaped (ECHILD) is gone too.
    Deadline deadline(kTaskWait);
    auto reap = [&](pid_t tid) {
      if (!wait_gone(tid, deadline))
        log::warn("killed task {} has not ended yet ({})", tid, proc::describe_state(tid));
    };
    // Children first: the init of a pid namespace ends only once every task in it is reaped.
    for (auto t = tasks_.rbegin(); t != tasks_.rend(); ++t) {
      for (size_t i = 1; i < t->threads.size(); i++) reap(t->threads[i].tid);
      if (!t->threads.empty()) reap(t->pid);
    }
    seized_.clear();
    log::info("killed the dumped tree");
    return;
  }
  release(how == End::kStop);
  ended_ = std::chrono::steady_clock::now();
}

FrozenTree::~FrozenTree() {
  if (!committed_ && !seized_.empty()) {
    log::info("dump did not complete: resuming the tree as it was");
    release(false);
  }
}

}  // namespace cryo
