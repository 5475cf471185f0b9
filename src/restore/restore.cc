#include "restore/restore.h"

#include "restore/seccomp.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>

#include "base/error.h"
#include "base/fault.h"
#include "base/fd.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "base/own_file.h"
#include "base/progress.h"
#include "image/image.h"
#include "image/stats.h"
#include "restore/cgroups.h"
#include "restore/core.h"
#include "restore/file_locks.h"
#include "restore/files.h"
#include "restore/ghost_files.h"
#include "restore/inet.h"
#include "restore/lazy.h"
#include "restore/mm.h"
#include "restore/mounts.h"
#include "restore/plan.h"
#include "restore/sysv_shm.h"
#include "restore/tree.h"
#include "restore/trust.h"
#include "restore/tty.h"

namespace cryo::restore {
namespace {

using clock = std::chrono::steady_clock;
uint32_t usec_since(clock::time_point t0) {
  return static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - t0).count());
}

// --pidfile, created (O_EXCL, mode 0600, as CRIU does) before any process exists, so a path
// that cannot be used fails the restore while there is nothing to undo. The root's PID is
// written just before release; a failed restore removes the file again.
class PidFile {
 public:
  explicit PidFile(const std::string& path) : path_(path) {
    if (path_.empty()) return;
    fd_ = create_new_file(path_, "pidfile");
    if (::fstat(fd_.get(), &st_) < 0) fail_sys("cannot stat pidfile {}", path_);
  }
  PidFile(const PidFile&) = delete;
  PidFile& operator=(const PidFile&) = delete;
  ~PidFile() {
    if (path_.empty() || kept_) return;
    // Only the file cryo created: someone may have replaced it meanwhile.
    struct stat now;
    if (::lstat(path_.c_str(), &now) == 0 && now.st_dev == st_.st_dev && now.st_ino == st_.st_ino)
      ::unlink(path_.c_str());
  }
  void write(pid_t pid) {
    if (path_.empty()) return;
    std::string s = std::to_string(pid);
    if (::write(fd_.get(), s.data(), s.size()) != static_cast<ssize_t>(s.size()))
      fail_sys("cannot write pidfile {}", path_);
    if (::close(fd_.release()) < 0) fail_sys("cannot write pidfile {}", path_);
  }
  void keep() { kept_ = true; }

 private:
  std::string path_;
  Fd fd_;
  struct stat st_ {};
  bool kept_ = false;
};

}  // namespace

int run(const Options& opts) {
  auto t0 = clock::now();
  progress::Reporter progress("restore");
  hooks::run(opts.hooks, hooks::kPreRestore, 0);
  progress::phase("checking images");
  check_images_trusted(opts.dir);
  Plan plan = load_plan(opts.dir, opts.shell_job);
  if (opts.tcp_close) plan.tcp_close = true;
  plan.inherit_fds = opts.inherit_fds;
  MountTree mounts(plan, opts.mounts);
  plan.lazy_pages = opts.lazy_pages;
  if (!opts.lazy_pages) refuse_on_source(plan);
  std::optional<LazyRestore> lazy;
  if (opts.lazy_pages) lazy.emplace(opts.work_dir.empty() ? opts.dir : opts.work_dir);
  // Connected TCP sockets stay locked (as the dump left them) until the tree runs; the lock
  // is lifted then, or when the restore fails.
  const std::vector<net::Connection> tcp = tcp_connections(plan, opts.tcp_established);
  net::NetworkLock netlock(opts.network_lock.empty()
                               ? static_cast<net::LockMethod>(plan.network_lock)
                               : net::parse_lock_method(opts.network_lock),
                           plan.tasks.front().pid());
  netlock.add(tcp);
  PidFile pidfile(opts.pidfile);
  image::StatsJsonFile json(opts.stats_json);
  FileLocks locks(plan, opts.file_locks);
  progress::phase("waiting for the PIDs to be free");
  wait_pids_free(plan);
  progress::phase("ghost files");
  GhostFiles ghosts(plan);
  for (const auto& t : plan.tasks)
    if (!t.zombie)
      for (const auto& p : t.pages) progress::add_total(p.nr_pages());

  // cryo's own pty ends must be gone before release, like its other files.
  std::optional<Ttys> ttys(std::in_place, plan);
  progress::phase("cgroups");
  Cgroups cgroups(plan, opts.cgroups);  // made before the tree: removed after it on failure
  progress::phase("SysV shared memory");
  SysvSegments sysv(plan);
  interrupt_point();
  progress::phase("creating tasks");
  auto t_fork = clock::now();
  MmPages pages;
  ShmemSet shmem(plan);
  // cryo's own copies of the tree's files must be gone before release: a pipe whose writers
  // are all closed in the tree must read as EOF there.
  std::optional<FileSet> files(std::in_place, plan, *ttys);
  NewTree tree(plan, &mounts, opts.net);
  tree.set_sibling(opts.sibling);
  double memory_s = 0;
  std::vector<std::pair<uint64_t, uint64_t>> parked(plan.tasks.size());
  // A task is built as soon as it exists, so that its children inherit its address space;
  // but one whose dumped process had no vDSO is built once the tree stands: its children must
  // be made from a layout that still has one.
  std::vector<bool> early(plan.tasks.size(), false);
  auto build = [&](size_t i) {
    interrupt_point();
    const TaskPlan& t = plan.tasks[i];
    progress::phase(fmt::format("memory of task {}", t.pid()));
    auto tm = clock::now();
    const TaskPlan* parent = t.parent >= 0 && early[static_cast<size_t>(t.parent)]
                                 ? &plan.tasks[static_cast<size_t>(t.parent)]
                                 : nullptr;
    MmPages p = restore_mm(tree.task(i), t, plan, shmem, *files, parent);
    if (lazy) lazy->create(tree.task(i), t);
    pages.written += p.written;
    pages.compared += p.compared;
    pages.kept += p.kept;
    parked[i] = {p.parked_vdso, p.parked_vdso_len};
    memory_s += std::chrono::duration<double>(clock::now() - tm).count();
  };
  tree.create(*ttys, [&](size_t i) {
    cgroups.place(i, tree.task(i).tid());
    sysv.place(i, tree.task(i).tid());
    const auto& vmas = plan.tasks[i].mm.vmas();
    if (std::none_of(vmas.begin(), vmas.end(),
                     [](const vma_entry& v) { return v.status() & image::kVmaVdso; }))
      return;
    early[i] = true;
    build(i);
  });
  // cryo restores no namespaces: CRIU's namespace points come once the tasks exist.
  hooks::run(opts.hooks, hooks::kSetupNamespaces, tree.root());
  hooks::run(opts.hooks, hooks::kPostSetupNamespaces, tree.root());
  for (size_t i = 0; i < plan.tasks.size(); i++)
    if (!early[i] && !plan.tasks[i].zombie) build(i);
  interrupt_point();
  // Forking time as CRIU counts it: creating the tree, without building address spaces.
  uint32_t forking_us =
      static_cast<uint32_t>(usec_since(t_fork) - static_cast<uint32_t>(memory_s * 1e6));
  for (size_t i = 0; i < plan.tasks.size(); i++)
    if (parked[i].first) drop_parked_vdso(tree.task(i), parked[i].first, parked[i].second);
  fault_point("restore-after-fork");
  shmem.finish(
      [&](pid_t pid) -> RemoteTask& { return tree.task(static_cast<size_t>(plan.find(pid))); });
  sysv.finish();
  fault_point("restore-after-memory");
  for (size_t i = 0; i < plan.tasks.size(); i++) {
    const TaskPlan& t = plan.tasks[i];
    interrupt_point();
    if (t.zombie) continue;
    progress::phase(fmt::format("files and state of task {}", t.pid()));
    RemoteTask& leader = tree.task(i);
    if (!shares_parent_files(plan, t)) {  // else its parent's table has them all
      restore_files(leader, t, *files);
      files->done_with(t);
    }
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
  GhostFiles::drop_links(plan);
  fault_point("restore-before-release");
  interrupt_point();
  hooks::run(opts.hooks, hooks::kPostRestore, tree.root());

  // pages_restored counts private pages, as CRIU's (shared memory is not in it).
  stats_entry stats = image::empty_restore_stats();
  auto* r = stats.mutable_restore();
  r->set_forking_time(forking_us);
  r->set_restore_time(usec_since(t0));
  r->set_pages_restored(pages.written);
  r->set_pages_compared(pages.compared);
  r->set_pages_skipped_cow(pages.kept);
  try {
    image::write_one(opts.work_dir.empty() ? opts.dir : opts.work_dir, "stats-restore",
                     image::magic::kStats, stats, /*service=*/true);
  } catch (const Error& e) {
    log::warn("{}", e.what());  // a read-only images directory must not fail a restore
  }
  pidfile.write(tree.root());

  // The tree may write to this terminal as soon as it runs.
  progress.stop();
  hooks::run(opts.hooks, hooks::kPreResume, tree.root());
  if (lazy) lazy->hand_over(plan, [&](size_t i) -> RemoteTask& { return tree.task(i); });
  tree.release(opts.leave_stopped);
  if (lazy) lazy->watch(plan);
  netlock.lift();
  sysv.keep();
  pidfile.keep();
  cgroups.keep();
  try {
    hooks::run(opts.hooks, hooks::kPostResume, tree.root());
  } catch (const Error& e) {
    log::user(log::kWarn, e.what());  // the tree runs: as CRIU, the restore stands
  }
  log::info(
      "Restore finished successfully: {} task(s), {} private pages written ({} kept shared with "
      "a parent) and {} shared pages in {} us",
      plan.tasks.size(), pages.written, pages.kept, shmem.pages_written(), r->restore_time());
  if (opts.display_stats) {
    std::fputs(image::stats_text(stats).c_str(), stdout);
    std::fflush(stdout);
  }
  try {
    json.write(stats);
  } catch (const Error& e) {
    log::user(log::kWarn, e.what());  // the tree runs: a statistics file does not undo that
  }
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
