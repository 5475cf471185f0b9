#include "dump/dump.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>

#include "base/error.h"
#include "base/fault.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "base/progress.h"
#include "core.pb.h"
#include "dump/core.h"
#include "dump/file_locks.h"
#include "dump/files.h"
#include "dump/image_workers.h"
#include "dump/mm.h"
#include "dump/page_sink.h"
#include "dump/seccomp.h"
#include "dump/sysv_shm.h"
#include "dump/timens.h"
#include "fs.pb.h"
#include "image/image.h"
#include "image/stats.h"
#include "infect/frozen_tree.h"
#include "inventory.pb.h"
#include "pageserver/client.h"
#include "proc/proc.h"
#include "pstree.pb.h"

namespace cryo::dump {
namespace {

using clock = std::chrono::steady_clock;
uint32_t usec_since(clock::time_point t0) {
  return static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - t0).count());
}

// Namespaces are not dumped yet: the tree must share all of cryo's (but time namespaces:
// see dump/timens.h).
void check_namespaces(pid_t pid) {
  static constexpr const char* kKinds[] = {"pid", "mnt", "net", "ipc", "uts", "user", "cgroup"};
  static const auto kMine = [] {
    std::vector<std::string> v;
    for (const char* ns : kKinds) v.push_back(proc::read_link(fmt::format("/proc/self/ns/{}", ns)));
    return v;
  }();
  for (size_t i = 0; i < std::size(kKinds); i++) {
    const char* ns = kKinds[i];
    const std::string& mine = kMine[i];
    auto theirs = proc::read_link(fmt::format("/proc/{}/ns/{}", pid, ns));
    if (mine != theirs)
      fail("task {} is in another {} namespace ({} vs cryo's {}): namespaces are not supported yet",
           pid, ns, theirs, mine);
  }
}

// Tasks grouped by a kernel object they may share (kcmp type), kept in kcmp's order of objects
// so that each task costs a binary search.
class KcmpGroups {
 public:
  KcmpGroups(int type, const char* what) : type_(type), what_(what) {}
  // The first task found on `pid`'s object, or none: then `pid` is that first task.
  std::optional<pid_t> find_or_add(pid_t pid) {
    size_t lo = 0, hi = firsts_.size();
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      long r = kernel::kcmp(firsts_[mid], pid, type_, 0, 0);
      if (r < 0 || r > 2) fail_sys("task {}: cannot compare its {} (kcmp)", pid, what_);
      if (r == 0) return firsts_[mid];
      if (r == 1)
        lo = mid + 1;
      else
        hi = mid;
    }
    firsts_.insert(firsts_.begin() + static_cast<std::ptrdiff_t>(lo), pid);
    return std::nullopt;
  }
  const char* what() const { return what_; }

 private:
  int type_;
  const char* what_;
  std::vector<pid_t> firsts_;
};

// Pages the dump of task `pid` will likely write (its anonymous memory, swapped or not): only
// for the progress total, corrected once the task's pages are dumped.
int64_t estimate_pages(pid_t pid) {
  auto s = proc::try_read_file(fmt::format("/proc/{}/smaps_rollup", pid));
  if (!s) return 0;
  int64_t kib = 0;
  for (const char* key : {"\nAnonymous:", "\nSwap:"}) {
    auto at = s->find(key);
    if (at != std::string::npos)
      kib += std::strtoll(s->c_str() + at + std::strlen(key), nullptr, 10);
  }
  return kib / 4;
}

// The kernel objects a task refers to. Every task shares cryo's namespaces (checked above),
// so each namespace kind has one id, the same in every task and in the inventory's root_ids;
// CRIU writes these ids for every task too (and sets ns_per_id).
task_kobj_ids_entry kobj_ids(pid_t pid) {
  task_kobj_ids_entry ids;
  ids.set_vm_id(pid);
  ids.set_files_id(pid);
  ids.set_fs_id(pid);
  ids.set_sighand_id(pid);
  ids.set_pid_ns_id(1);
  ids.set_net_ns_id(2);
  ids.set_ipc_ns_id(3);
  ids.set_uts_ns_id(4);
  ids.set_mnt_ns_id(5);
  ids.set_user_ns_id(6);
  ids.set_cgroup_ns_id(7);
  if (::access("/proc/self/ns/time", F_OK) == 0) ids.set_time_ns_id(TimeNamespaces::kRootId);
  return ids;
}

// A group whose leader exited is restored with a helper task holding the leader's PID for a
// while; a leader alive outside the tree holds that PID for good.
void refuse_live_group_leader(const FrozenTask& t) {
  auto text = proc::try_read_file(fmt::format("/proc/{}/stat", t.pgid));
  if (!text) return;
  proc::Stat leader = proc::parse_stat(*text);
  if (leader.state == 'Z' || leader.state == 'X') return;
  fail(
      "task {}: its process group {} is led by process {} ({}) outside the dumped tree, which a "
      "restore cannot recreate: dump a tree that contains that process, or let the task leave "
      "the group",
      t.pid, t.pgid, leader.pid, leader.comm);
}

// inventory_entry.network_lock_method: cryo locks no network (CRIU's NETWORK_LOCK_SKIP).
constexpr uint32_t kNetworkLockSkip = 2;

}  // namespace

void run(const Options& opts) {
  if (::access(opts.dir.c_str(), W_OK) < 0)
    fail_sys("cannot use the images directory {} (it must exist and be writable)", opts.dir);
  struct stat dst;
  if (::stat(opts.dir.c_str(), &dst) == 0 &&
      (dst.st_uid != ::geteuid() || (dst.st_mode & (S_IWGRP | S_IWOTH))))
    log::user(log::kWarn,
              fmt::format("images directory {} (owner uid {}, mode {:04o}) can be written by "
                          "others than uid {}: cryo restore will refuse it (chown it, chmod "
                          "go-w it, or dump elsewhere)",
                          opts.dir, dst.st_uid, dst.st_mode & 07777, ::geteuid()));
  // An older image set here must not look whole if this dump fails half-way.
  if (::unlink((opts.dir + "/inventory.img").c_str()) < 0 && errno != ENOENT)
    fail_sys("cannot remove the old {}/inventory.img", opts.dir);
  image::StatsJsonFile json(opts.stats_json);
  // Connected before the tree is frozen: an unreachable page server leaves it untouched.
  std::unique_ptr<PageSink> pages =
      opts.page_server ? pageserver::remote_sink(opts.ps) : local_sink(opts.dir);
  progress::Reporter progress("dump");
  progress::phase("freezing");
  auto t_start = clock::now();
  FrozenTree tree(opts.tree, opts.timeout);
  uint32_t freezing_us = usec_since(t_start);
  auto t_frozen = clock::now();
  fault_point("dump-after-freeze");

  auto& tasks = tree.tasks();
  const FrozenTask& root = tasks.front();
  // A session or group led from outside the tree is a terminal job: CRIU's --shell-job rule.
  bool outside_session = !tree.contains(root.sid) || !tree.contains(root.pgid);
  if (outside_session && !opts.shell_job)
    fail(
        "task {} belongs to session {} and group {} led from outside the dumped tree (a shell "
        "job): dump it with --shell-job (-j), or start it with setsid",
        root.pid, root.sid, root.pgid);
  for (const auto& t : tasks) {
    if (t.zombie && t.pid == root.pid) fail("the root task {} is a zombie", t.pid);
    if (!t.zombie) check_namespaces(t.pid);
    if (!t.zombie) refuse_io_uring(t.pid, t.io_workers);
    if (t.pid != root.pid && (!tree.contains(t.sid) && t.sid != root.sid))
      fail("task {}: its session {} is neither in the tree nor the root's: not supported yet",
           t.pid, t.sid);
    if (t.pgid != root.pgid && !tree.contains(t.pgid)) refuse_live_group_leader(t);
  }

  const TimeNamespaces timens(tasks);
  ShmemTable shmem;
  SysvShmTable sysv;
  SeccompTable seccomp;
  FileLockTable locks(opts.file_locks);
  FileTableOptions fo;
  fo.shell_job = opts.shell_job;
  fo.ext_unix_sk = opts.ext_unix_sk;
  fo.ghost_limit = opts.ghost_limit;
  fo.link_remap = opts.link_remap;
  fo.shmem = &shmem;
  fo.locks = &locks;
  fo.in_tree = [&](pid_t p) { return tree.contains(p); };
  FileTable files(std::move(fo));
  // After the tree: on failure the workers stop before the tree is let go.
  ImageWorkers images(opts.dir, *pages);
  uint32_t next_pages_id = 1;
  std::string& dir = const_cast<std::string&>(opts.dir);
  std::map<pid_t, int64_t> estimate;
  if (progress::active())
    for (const auto& t : tasks)
      if (!t.zombie) progress::add_total(estimate[t.pid] = estimate_pages(t.pid));

  // fd tables, in kcmp's order of tables: a task created with CLONE_FILES shares its
  // parent's, which is then dumped once, under the parent's files_id.
  KcmpGroups tables(kernel::kKcmpFiles, "fd table");
  // A memory, fs (cwd, root, umask) or signal handler table shared by two processes comes
  // back as two: refused.
  KcmpGroups mms(kernel::kKcmpVm, "address space"), fss(kernel::kKcmpFs, "fs information"),
      handlers(kernel::kKcmpSighand, "signal handlers");
  std::map<pid_t, uint32_t> files_id_of;
  for (auto& t : tasks) {
    interrupt_point();
    task_kobj_ids_entry ids = kobj_ids(t.pid);
    timens.set_ids(t.pid, &ids);
    if (t.zombie) {
      images.write_one(fmt::format("core-{}.img", t.pid), image::magic::kCore, dump_zombie_core(t));
      continue;
    }
    for (KcmpGroups* g : {&mms, &fss, &handlers})
      if (auto other = g->find_or_add(t.pid))
        fail(
            "task {} shares its {} with task {} (made by clone without CLONE_THREAD, with "
            "CLONE_VM, CLONE_FS or CLONE_SIGHAND): processes sharing it are not supported",
            t.pid, g->what(), *other);
    const std::optional<pid_t> shared = tables.find_or_add(t.pid);
    if (shared) {
      auto parent = files_id_of.find(t.ppid);
      if (parent == files_id_of.end() || parent->second != static_cast<uint32_t>(*shared))
        fail(
            "task {} shares its fd table with task {}, which is not its parent's: only a table "
            "shared with the parent (clone with CLONE_FILES) is supported",
            t.pid, *shared);
      ids.set_files_id(static_cast<uint32_t>(*shared));
    }
    files_id_of[t.pid] = ids.files_id();
    log::info("dumping task {} ({})", t.pid, t.stat.comm);
    progress::phase(fmt::format("task {}", t.pid));
    CoreExtras extras;
    std::vector<core_entry> cores = dump_core(t, seccomp, &extras);
    *cores[0].mutable_ids() = ids;
    for (size_t i = 0; i < cores.size(); i++)
      images.write_one(fmt::format("core-{}.img", t.threads[i].tid), image::magic::kCore,
                       std::move(cores[i]));
    images.write_one(fmt::format("ids-{}.img", t.pid), image::magic::kIds, ids);

    mm_entry mm = collect_mm(t.pid, extras.brk, files, shmem);
    mm.set_dumpable(extras.dumpable);
    mm.set_thp_disabled(extras.thp_disabled);
    if (extras.mlockall) mm.set_cryo_mlockall(extras.mlockall);
    // Done with the task's memory (the probes have put back what they wrote): its pages are
    // copied meanwhile.
    images.add_pages(t.pid, mm, next_pages_id++, estimate[t.pid]);
    sysv.add(t.pid, mm);
    images.write_one(fmt::format("mm-{}.img", t.pid), image::magic::kMm, std::move(mm));

    interrupt_point();
    progress::phase(fmt::format("files of task {}", t.pid));
    if (!shared) files.dump_fds(t.pid, ids, dir);
    fs_entry fs;
    std::string cwd = proc::read_link(fmt::format("/proc/{}/cwd", t.pid));
    std::string rootdir = proc::read_link(fmt::format("/proc/{}/root", t.pid));
    fs.set_cwd_id(files.by_path(cwd, O_RDONLY | O_DIRECTORY, fmt::format("/proc/{}/cwd", t.pid)));
    fs.set_root_id(
        files.by_path(rootdir, O_RDONLY | O_DIRECTORY, fmt::format("/proc/{}/root", t.pid)));
    fs.set_umask(extras.umask);
    images.write_one(fmt::format("fs-{}.img", t.pid), image::magic::kFs, std::move(fs));
  }
  // Until the workers name the task whose pages they copy.
  progress::phase(fmt::format("memory of task {}", tasks.back().pid));
  const PageStats mem = images.finish();
  progress::phase("shared memory");
  ShmemPages shpages = shmem.dump(*pages, &next_pages_id);
  pages->finish();
  sysv.dump(dir, kobj_ids(root.pid).ipc_ns_id());
  progress::phase("writing images");
  files.write(dir);
  locks.write(dir, [&](pid_t pid) { return tree.contains(pid); });
  seccomp.write(dir);
  timens.write(dir);

  image::Writer ps(dir, "pstree.img", image::magic::kPstree);
  for (const auto& t : tasks) {
    pstree_entry e;
    e.set_pid(t.pid);
    e.set_ppid(t.pid == root.pid ? 0 : t.ppid);
    e.set_pgid(t.pgid);
    e.set_sid(t.sid);
    for (const auto& th : t.threads) e.add_threads(th.tid);
    ps.put(e);
  }
  ps.close();

  // The last point where a stop signal aborts the dump: past it, the dump completes.
  interrupt_point();
  inventory_entry inv;
  inv.set_img_version(image::kImagesV1_1);
  inv.set_fdinfo_per_id(true);
  *inv.mutable_root_ids() = kobj_ids(root.pid);
  inv.set_ns_per_id(true);
  inv.set_network_lock_method(kNetworkLockSkip);
  inv.set_lsmtype(NO_LSM);
  std::string uptime = proc::read_file("/proc/uptime");
  inv.set_dump_uptime(static_cast<uint64_t>(std::stod(uptime) * 1e6));
  image::write_one(dir, "inventory.img", image::magic::kInventory, inv);

  fault_point("dump-after-images");

  files.commit();
  progress::phase("releasing the tree");
  tree.commit(opts.leave_stopped   ? FrozenTree::End::kStop
              : opts.leave_running ? FrozenTree::End::kRun
                                   : FrozenTree::End::kKill);
  progress.stop();
  // As CRIU: the tree is frozen until it is killed, resumed or left stopped, and the
  // statistics are written once the dump is complete.
  stats_entry stats = image::empty_dump_stats();
  auto* d = stats.mutable_dump();
  d->set_freezing_time(freezing_us);
  d->set_frozen_time(usec_since(t_frozen));
  d->set_memdump_time(static_cast<uint32_t>(mem.read_seconds * 1e6));
  d->set_memwrite_time(static_cast<uint32_t>(mem.write_seconds * 1e6));
  d->set_pages_scanned(mem.scanned);
  d->set_pages_written(mem.written);
  d->set_shpages_scanned(shpages.scanned);
  d->set_shpages_written(shpages.written);
  log::info("dump of tree {} finished: {} task(s), {} pages written ({} of shared memory)",
            opts.tree, tasks.size(), mem.written + shpages.written, shpages.written);
  // The dump is done: a statistics file that cannot be written does not undo it.
  try {
    image::write_one(dir, "stats-dump", image::magic::kStats, stats, /*service=*/true);
  } catch (const Error& e) {
    log::user(log::kWarn, e.what());
  }
  if (opts.display_stats) {
    std::fputs(image::stats_text(stats).c_str(), stdout);
    std::fflush(stdout);
  }
  try {
    json.write(stats);
  } catch (const Error& e) {
    log::user(log::kWarn, e.what());
  }
}

}  // namespace cryo::dump
