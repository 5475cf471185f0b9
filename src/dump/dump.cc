#include "dump/dump.h"

#include <fcntl.h>
#include <sys/mman.h>
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
#include "dump/cgroups.h"
#include "dump/core.h"
#include "dump/dedup.h"
#include "dump/file_locks.h"
#include "dump/files.h"
#include "dump/image_workers.h"
#include "dump/mem_track.h"
#include "dump/mm.h"
#include "dump/mounts.h"
#include "dump/namespaces.h"
#include "dump/page_sink.h"
#include "dump/seccomp.h"
#include "dump/sysv_shm.h"
#include "dump/timens.h"
#include "fs.pb.h"
#include "image/image.h"
#include "image/stats.h"
#include "infect/frozen_tree.h"
#include "inventory.pb.h"
#include "pages/lazy_source.h"
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

// The kernel objects a task refers to. CRIU writes the namespace ids for every task too (and
// sets ns_per_id).
task_kobj_ids_entry kobj_ids(pid_t pid, const Namespaces& ns) {
  task_kobj_ids_entry ids;
  ids.set_vm_id(pid);
  ids.set_files_id(pid);
  ids.set_fs_id(pid);
  ids.set_sighand_id(pid);
  ns.set_ids(pid, &ids);
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

// inventory_entry.pre_dump_mode of a pre-dump: CRIU's PRE_DUMP_SPLICE, its default.
constexpr uint32_t kPreDumpSplice = 1;

void prepare_dir(const Options& opts) {
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
  // Nor name the holder of an older chain.
  ::unlink((opts.dir + "/" + MemTracker::kHolderFile).c_str());
}

void write_inventory(const Options& opts, const task_kobj_ids_entry& root_ids,
                     uint32_t root_cg_set = 0) {
  inventory_entry inv;
  if (root_cg_set) inv.set_root_cg_set(root_cg_set);
  inv.set_img_version(image::kImagesV1_1);
  inv.set_fdinfo_per_id(true);
  *inv.mutable_root_ids() = root_ids;
  inv.set_ns_per_id(true);
  inv.set_network_lock_method(static_cast<uint32_t>(opts.network_lock));
  if (opts.tcp_close) inv.set_tcp_close(true);
  inv.set_lsmtype(NO_LSM);
  std::string uptime = proc::read_file("/proc/uptime");
  inv.set_dump_uptime(static_cast<uint64_t>(std::stod(uptime) * 1e6));
  if (opts.pre_dump) inv.set_pre_dump_mode(kPreDumpSplice);
  image::write_one(opts.dir, "inventory.img", image::magic::kInventory, inv);
}

// stats-dump, --display-stats and --stats-json, once the dump is complete.
void report_stats(const Options& opts, const stats_entry& stats, image::StatsJsonFile& json) {
  // The dump is done: a statistics file that cannot be written does not undo it.
  try {
    // In the work directory, as CRIU: podman exports it from there.
    image::write_one(opts.work_dir.empty() ? opts.dir : opts.work_dir, "stats-dump",
                     image::magic::kStats, stats, /*service=*/true);
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

// The private mappings of a task, as ImageWorkers::add_pages takes them: a pre-dump writes no
// mm image, so it looks at no file (the final dump refuses what dump/mm.cc refuses).
mm_entry private_mappings(const std::vector<proc::Vma>& vmas) {
  mm_entry mm;
  for (const proc::Vma& v : vmas) {
    if (v.shared) continue;
    uint32_t status;
    if (v.path.empty() || v.path == "[heap]" || v.path == "[stack]")
      status = image::kVmaAnonPrivate;
    else if (v.path[0] == '/' && v.path.rfind("/dev/zero", 0) != 0)
      status = image::kVmaFilePrivate;
    else
      continue;
    vma_entry* e = mm.add_vmas();
    e->set_start(v.start);
    e->set_end(v.end);
    e->set_prot((v.r ? PROT_READ : 0) | (v.w ? PROT_WRITE : 0) | (v.x ? PROT_EXEC : 0));
    e->set_status(image::kVmaRegular | status);
  }
  return mm;
}

// Where the pages go. Connected before the tree is frozen: an unreachable page server leaves
// it untouched. When the chain goes on from this dump (`chained`), the entries sent to a page
// server are kept here, for the next dump to know what the server's parent images hold.
std::unique_ptr<PageSink> page_sink(const Options& opts, bool chained) {
  if (!opts.page_server) return local_sink(opts.dir);
  auto sink = pageserver::remote_sink(opts.ps, chained ? opts.dir : std::string());
  // Asked before the previous dump's tracking is taken, which a failure here would lose.
  if (!opts.prev_dir.empty() && !sink->has_parent(PagemapKind::kTask, opts.tree))
    fail(
        "the page server has no parent image of {}, and this dump continues a chain "
        "(--prev-images-dir): start the page server with --prev-images-dir naming where it "
        "wrote the previous dump of the chain",
        pagemap_name(PagemapKind::kTask, opts.tree));
  return sink;
}

// cryo pre-dump: the tree is frozen only while a userfaultfd is made in each task that has
// none yet (dump/mem_track.h); it runs on while the written pages are found, the mappings
// protected and the pages copied. A page written meanwhile is in the image at some value it
// had since, and marked written: the next dump takes it again.
void pre_dump(const Options& opts) {
  prepare_dir(opts);
  std::unique_ptr<PageSink> pages = page_sink(opts, true);
  MemTracker tracker(opts.dir, opts.prev_dir, true);
  image::StatsJsonFile json(opts.stats_json);
  progress::Reporter progress("pre-dump");
  progress::phase("freezing");
  auto t_start = clock::now();
  std::optional<CgroupFreezer> freezer;
  if (!opts.freeze_cgroup.empty()) freezer.emplace(opts.freeze_cgroup, opts.tree, opts.timeout);
  FrozenTree tree(opts.tree, opts.timeout, freezer ? &*freezer : nullptr);
  uint32_t freezing_us = usec_since(t_start);
  auto t_frozen = clock::now();
  auto& tasks = tree.tasks();
  const pid_t root = tasks.front().pid;
  if (tasks.front().zombie) fail("the root task {} is a zombie", root);
  const Namespaces ns(tasks, opts.net);
  std::vector<pid_t> pids;
  for (auto& t : tasks) {
    interrupt_point();
    if (t.zombie) continue;
    t.maps = proc::read_maps(t.pid);
    refuse_io_uring(t);
    progress::phase(fmt::format("task {}", t.pid));
    tracker.attach(t);
    pids.push_back(t.pid);
  }
  interrupt_point();
  progress::phase("releasing the tree");
  tree.commit(FrozenTree::End::kRun);
  const uint32_t frozen_us = usec_since(t_frozen);
  log::info("pre-dump of tree {}: frozen for {} us", opts.tree, frozen_us);

  ImageWorkers images(opts.dir, *pages);
  images.tasks_run();
  uint32_t next_pages_id = 1;
  for (pid_t pid : pids) {
    // Mappings as they are now: those the tracking protected are copied after that.
    const std::vector<proc::Vma> vmas = proc::read_maps(pid);  // smaps would walk every page
    PageRanges in_parent = tracker.track(pid, vmas, nullptr);
    images.add_pages(pid, private_mappings(vmas), next_pages_id++, 0, std::move(in_parent));
  }
  progress::phase("memory");
  const PageStats mem = images.finish();
  pages->finish();
  tracker.hand_over();
  write_inventory(opts, kobj_ids(root, ns));
  if (opts.auto_dedup && !opts.prev_dir.empty()) dedup(opts.dir);
  progress.stop();
  stats_entry stats = image::empty_dump_stats();
  auto* d = stats.mutable_dump();
  d->set_freezing_time(freezing_us);
  d->set_frozen_time(frozen_us);
  d->set_memdump_time(static_cast<uint32_t>(mem.read_seconds * 1e6));
  d->set_memwrite_time(static_cast<uint32_t>(mem.write_seconds * 1e6));
  d->set_pages_scanned(mem.scanned);
  d->set_pages_skipped_parent(mem.in_parent);
  d->set_pages_written(mem.written);
  log::info("pre-dump of tree {} finished: {} pages written, {} left in the parent images",
            opts.tree, mem.written, mem.in_parent);
  report_stats(opts, stats, json);
}

}  // namespace

void run(const Options& opts) {
  if (opts.pre_dump) return pre_dump(opts);
  prepare_dir(opts);
  // Before the freeze: the chain's tracking is taken from the previous dump's holder. It goes
  // on for a next dump only while the tree runs on.
  const bool runs_on = opts.leave_running || opts.leave_stopped;
  std::unique_ptr<PageSink> pages = page_sink(opts, opts.track_mem && runs_on);
  MemTracker tracker(opts.dir, opts.prev_dir, opts.track_mem && runs_on);
  image::StatsJsonFile json(opts.stats_json);
  progress::Reporter progress("dump");
  hooks::run(opts.hooks, hooks::kPreDump, opts.tree);
  progress::phase("freezing");
  auto t_start = clock::now();
  // Before the tree: it is thawed (or frozen again, as it was) once the tree is let go.
  std::optional<CgroupFreezer> freezer;
  if (!opts.freeze_cgroup.empty()) freezer.emplace(opts.freeze_cgroup, opts.tree, opts.timeout);
  CgroupSets cgroups(opts.cgroups);
  FrozenTree tree(opts.tree, opts.timeout, freezer ? &*freezer : nullptr);
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
  for (auto& t : tasks) {
    if (t.zombie && t.pid == root.pid) fail("the root task {} is a zombie", t.pid);
    if (!t.zombie) {
      t.maps = proc::read_maps(t.pid);
      refuse_io_uring(t);
    }
    if (t.pid != root.pid && (!tree.contains(t.sid) && t.sid != root.sid))
      fail("task {}: its session {} is neither in the tree nor the root's: not supported yet",
           t.pid, t.sid);
    if (t.pgid != root.pgid && !tree.contains(t.pgid)) refuse_live_group_leader(t);
  }

  const Namespaces ns(tasks, opts.net);
  const TimeNamespaces timens(tasks);
  const MountNamespaces mounts(tasks, opts.mounts);
  ShmemTable shmem;
  SysvShmTable sysv;
  SeccompTable seccomp;
  FileLockTable locks(opts.file_locks);
  // Before the files: on failure, its sockets leave repair mode after cryo's copies are closed
  // and before the tree runs again.
  std::optional<net::RepairSession> tcp;
  if (opts.tcp_established) tcp.emplace(opts.network_lock, root.pid);
  FileTableOptions fo;
  fo.shell_job = opts.shell_job;
  fo.ext_unix_sk = opts.ext_unix_sk;
  fo.ghost_limit = opts.ghost_limit;
  fo.link_remap = opts.link_remap;
  fo.shmem = &shmem;
  fo.locks = &locks;
  fo.in_tree = [&](pid_t p) { return tree.contains(p); };
  fo.tcp = tcp ? &*tcp : nullptr;
  fo.tcp_close = opts.tcp_close;
  fo.skip_in_flight = opts.skip_in_flight;
  FileTable files(std::move(fo));
  // After the tree: on failure the workers stop before the tree is let go.
  ImageWorkers images(opts.dir, *pages);
  if (opts.lazy_pages) images.lazy_pages();
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
    task_kobj_ids_entry ids = kobj_ids(t.pid, ns);
    timens.set_ids(t.pid, &ids);
    mounts.set_ids(&ids);
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
    std::vector<pid_t> tids;
    for (const auto& th : t.threads) tids.push_back(th.tid);
    if (uint32_t cg_set = cgroups.add(t.pid, tids)) cores[0].mutable_tc()->set_cg_set(cg_set);
    for (size_t i = 0; i < cores.size(); i++)
      images.write_one(fmt::format("core-{}.img", t.threads[i].tid), image::magic::kCore,
                       std::move(cores[i]));
    images.write_one(fmt::format("ids-{}.img", t.pid), image::magic::kIds, ids);

    mm_entry mm = collect_mm(t, extras.brk, files, shmem);
    mm.set_dumpable(extras.dumpable);
    mm.set_thp_disabled(extras.thp_disabled);
    if (extras.mlockall) mm.set_cryo_mlockall(extras.mlockall);
    // Done with the task's memory (the probes have put back what they wrote): its pages are
    // copied meanwhile.
    PageRanges in_parent = tracker.track(t, t.maps);
    images.add_pages(t.pid, mm, next_pages_id++, estimate[t.pid], std::move(in_parent));
    sysv.add(t.pid, mm, ids.ipc_ns_id());
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
  const uint32_t ipc_ns = kobj_ids(root.pid, ns).ipc_ns_id();
  if (const IpcNamespace* ipc = ns.ipc(ipc_ns))
    ipc->run([&] { sysv.dump(dir, ipc_ns, ipc->segments()); });
  else
    sysv.dump(dir, ipc_ns);
  progress::phase("writing images");
  files.write(dir);
  locks.write(dir, [&](pid_t pid) { return tree.contains(pid); });
  seccomp.write(dir);
  timens.write(dir);
  mounts.write(dir);
  cgroups.write(dir);
  ns.write(dir);

  image::Writer ps(dir, "pstree.img", image::magic::kPstree);
  for (const auto& t : tasks) {
    pstree_entry e;
    e.set_pid(t.pid);
    e.set_ppid(t.pid == root.pid ? 0 : t.ppid);
    e.set_pgid(t.pgid);
    e.set_sid(t.sid);
    for (const auto& th : t.threads) e.add_threads(th.tid);
    ns.set_pids(t, &e);
    ps.put(e);
  }
  ps.close();

  // The last point where a stop signal aborts the dump: past it, the dump completes.
  interrupt_point();
  // dump --lazy-pages: the lazy pages are kept here for the lazy-pages daemon, as the tree
  // dies like any dumped tree (its PIDs may be restored on this host). Before the inventory:
  // a port that cannot be had fails the dump with the tree whole.
  std::optional<pages::LazySource> lazy;
  if (opts.lazy_pages) {
    std::vector<pid_t> pids;
    for (const auto& t : tasks)
      if (!t.zombie) pids.push_back(t.pid);
    lazy.emplace(opts.dir, pids);
    lazy->listen({opts.ps.address, opts.ps.port, opts.ps.tls});
  }
  tracker.hand_over();
  task_kobj_ids_entry root_ids = kobj_ids(root.pid, ns);
  mounts.set_ids(&root_ids);
  write_inventory(opts, root_ids, cgroups.root_set());
  if (opts.auto_dedup && !opts.prev_dir.empty()) dedup(dir);

  fault_point("dump-after-images");
  // From here on the images are complete: a restore elsewhere could start.
  log::info("images complete after {} us frozen", usec_since(t_frozen));
  // As CRIU: the images are whole, the tree still frozen; a failing listener lets it run on,
  // and the image set must not look whole then.
  try {
    hooks::run(opts.hooks, hooks::kPostDump, opts.tree);
  } catch (const Error&) {
    ::unlink((opts.dir + "/inventory.img").c_str());
    throw;
  }

  files.commit();
  progress::phase("releasing the tree");
  // Sockets leave repair mode before a tree that runs on does; a killed tree's close quietly.
  if (tcp) tcp->commit(!opts.leave_stopped && !opts.leave_running);
  tree.commit(opts.leave_stopped   ? FrozenTree::End::kStop
              : opts.leave_running ? FrozenTree::End::kRun
                                   : FrozenTree::End::kKill);
  progress.stop();
  // As CRIU: the tree is frozen until it is killed, resumed or left stopped, and the
  // statistics are written once the dump is complete. A killed tree's frozen time ends with
  // the SIGKILL: its teardown, which commit() waits for, is no pause of the application.
  stats_entry stats = image::empty_dump_stats();
  auto* d = stats.mutable_dump();
  d->set_freezing_time(freezing_us);
  d->set_frozen_time(static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(tree.ended() - t_frozen).count()));
  log::info("tree frozen for {} us; released {} us ago", d->frozen_time(),
            usec_since(tree.ended()));
  d->set_memdump_time(static_cast<uint32_t>(mem.read_seconds * 1e6));
  d->set_memwrite_time(static_cast<uint32_t>(mem.write_seconds * 1e6));
  d->set_pages_scanned(mem.scanned);
  d->set_pages_skipped_parent(mem.in_parent);
  d->set_pages_written(mem.written);
  if (lazy) d->set_pages_lazy(lazy->pages());
  d->set_shpages_scanned(shpages.scanned);
  d->set_shpages_written(shpages.written);
  log::info("dump of tree {} finished: {} task(s), {} pages written ({} of shared memory)",
            opts.tree, tasks.size(), mem.written + shpages.written, shpages.written);
  report_stats(opts, stats, json);
  if (lazy) {
    try {
      lazy->serve();
    } catch (const Error& e) {
      fail(
          "{}: the dumped tree is gone, so are its {} lazy pages: a restore from {} cannot "
          "complete",
          e.what(), lazy->pages(), opts.dir);
    }
    // The daemon has every page: the tree runs at the destination, whose restore took the
    // connections over. The lock the dump left here (for a restore on this host) has served;
    // kept, it would block those connections' addresses on this host for good.
    if (opts.tcp_established) try {
        net::lift_lock(opts.network_lock, opts.tree);
      } catch (const Error& e) {
        log::warn("{}", e.what());
      }
  }
}

}  // namespace cryo::dump
