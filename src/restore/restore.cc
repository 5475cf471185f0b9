#include "restore/restore.h"

#include "restore/seccomp.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <optional>

#include "base/error.h"
#include "base/fault.h"
#include "base/fd.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "image/image.h"
#include "restore/core.h"
#include "restore/file_locks.h"
#include "restore/files.h"
#include "restore/ghost_files.h"
#include "restore/mm.h"
#include "restore/plan.h"
#include "restore/tree.h"
#include "restore/tty.h"
#include "stats.pb.h"

namespace cryo::restore {
namespace {

using clock = std::chrono::steady_clock;
uint32_t usec_since(clock::time_point t0) {
  return static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - t0).count());
}

void write_pidfile(const std::string& path, pid_t pid) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  std::string s = std::to_string(pid);
  if (!fd || ::write(fd.get(), s.data(), s.size()) != static_cast<ssize_t>(s.size()))
    fail_sys("cannot write pidfile {}", path);
}

}  // namespace

int run(const Options& opts) {
  auto t0 = clock::now();
  Plan plan = load_plan(opts.dir, opts.shell_job);
  FileLocks locks(plan, opts.file_locks);
  wait_pids_free(plan);
  GhostFiles ghosts(plan);

  // cryo's own pty ends must be gone before release, like its other files.
  std::optional<Ttys> ttys(std::in_place, plan);
  interrupt_point();
  NewTree tree(plan);
  tree.create(*ttys);
  interrupt_point();
  uint32_t forking_us = usec_since(t0);
  fault_point("restore-after-fork");

  uint64_t pages = 0;
  ShmemSet shmem(plan);
  // cryo's own copies of the tree's files must be gone before release: a pipe whose writers
  // are all closed in the tree must read as EOF there.
  std::optional<FileSet> files(std::in_place, plan, *ttys);
  for (size_t i = 0; i < plan.tasks.size(); i++) {
    interrupt_point();
    if (plan.tasks[i].zombie) continue;
    pages += restore_mm(tree.task(i), plan.tasks[i], plan, shmem, *files);
  }
  shmem.finish(
      [&](pid_t pid) -> RemoteTask& { return tree.task(static_cast<size_t>(plan.find(pid))); });
  pages += shmem.pages_written();
  fault_point("restore-after-memory");
  for (size_t i = 0; i < plan.tasks.size(); i++) {
    const TaskPlan& t = plan.tasks[i];
    interrupt_point();
    if (t.zombie) continue;
    RemoteTask& leader = tree.task(i);
    restore_files(leader, t, *files);
    // After restore_files: closing any fd on a file drops the task's POSIX locks on it.
    locks.restore(leader, t);
    restore_fs(leader, t, plan);
    restore_process_state(leader, t);
    std::vector<RemoteTask*> threads = tree.create_threads(i);
    for (size_t k = 0; k < threads.size(); k++) restore_thread_state(*threads[k], t.threads[k]);
    restore_shared_signals(leader, t);
    for (size_t k = 0; k < threads.size(); k++)
      restore_seccomp(*threads[k], t.threads[k].thread_core(), plan.seccomp);
    restore_timers(leader, t);
    for (size_t k = 0; k < threads.size(); k++) {
      restore_creds(*threads[k], t.threads[k]);
      restore_after_creds(*threads[k], t.threads[k], i == 0 && k == 0);
    }
    restore_dumpable(leader, t);
    leader.unmap_scratch();
    for (size_t k = 0; k < threads.size(); k++) restore_registers(*threads[k], t.threads[k]);
  }
  ttys->finish();
  files->keep();
  files.reset();
  ttys.reset();
  ghosts.remove();
  fault_point("restore-before-release");
  interrupt_point();

  stats_entry stats;
  auto* r = stats.mutable_restore();
  r->set_pages_compared(0);
  r->set_pages_skipped_cow(0);
  r->set_forking_time(forking_us);
  r->set_restore_time(usec_since(t0));
  r->set_pages_restored(pages);
  try {
    image::write_one(opts.dir, "stats-restore", image::magic::kStats, stats, /*service=*/true);
  } catch (const Error& e) {
    log::warn("{}", e.what());  // a read-only images directory must not fail a restore
  }
  if (!opts.pidfile.empty()) write_pidfile(opts.pidfile, tree.root());

  tree.release(opts.leave_stopped);
  log::info("Restore finished successfully: {} task(s), {} pages in {} us", plan.tasks.size(),
            pages, r->restore_time());
  if (opts.display_stats)
    std::printf(
        "Displaying restore stats:\nForking time: %u us\nRestore time: %u us\n"
        "Pages restored: %lu\n",
        forking_us, r->restore_time(), static_cast<unsigned long>(pages));
  if (opts.detached) return 0;

  // The tree runs on its own now: a stop signal ends cryo, not the tree.
  default_stop_signals();
  if (int sig = stop_signal()) ::raise(sig);

  // As CRIU does without -d: wait for the root task and pass on how it ended.
  int st;
  for (;;) {
    pid_t w = ::waitpid(tree.root(), &st, 0);
    if (w == tree.root()) break;
    if (w < 0 && errno == EINTR) continue;
    fail_sys("cannot wait for the restored root task {}", tree.root());
  }
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return 1;
}

}  // namespace cryo::restore
