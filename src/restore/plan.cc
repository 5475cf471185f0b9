#include "restore/plan.h"

#include <sys/socket.h>

#include "restore/file_kind.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <set>
#include <thread>
#include <tuple>

#include "arch/x86_64/regs.h"
#include "base/error.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "base/strings.h"
#include "image/image.h"
#include "image/mounts.h"
#include "inventory.pb.h"
#include "kernel/syscalls.h"
#include "proc/proc.h"
#include "remap-file-path.pb.h"
#include "restore/tty.h"
#include "restore/validate.h"
#include "sk-packet.pb.h"

namespace cryo::restore {

int Plan::find(pid_t pid) const {
  for (size_t i = 0; i < tasks.size(); i++)
    if (tasks[i].pid() == pid) return static_cast<int>(i);
  return -1;
}

const reg_file_entry& Plan::reg(uint32_t id, const char* what, pid_t pid) const {
  auto it = files.find(id);
  if (it == files.end() || !it->second.has_reg())
    fail("image files.img is corrupt: task {} {} refers to file id {} which it does not hold", pid,
         what, id);
  return it->second.reg();
}

namespace {

uint64_t file_size(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) < 0) fail_sys("cannot open image {}", path);
  return static_cast<uint64_t>(st.st_size);
}

// A pagemap image whose runs are checked by `check` (returning the page count), and its pages.
std::pair<uint32_t, std::vector<pagemap_entry>> read_pagemap(
    const std::string& dir, const std::string& name,
    const std::function<uint64_t(const std::vector<pagemap_entry>&)>& check) {
  image::Reader r(dir, name, image::magic::kPagemap);
  pagemap_head head;
  if (!r.next(head)) fail("image {} is truncated: no header", name);
  std::vector<pagemap_entry> runs;
  for (pagemap_entry e; r.next(e);) runs.push_back(e);
  uint64_t pages = check(runs);
  const std::string pages_name = fmt::format("pages-{}.img", head.pages_id());
  check_pages_size(pages, file_size(dir + "/" + pages_name), pages_name, name);
  return {head.pages_id(), std::move(runs)};
}

void load_pipe_data(Plan& plan, const char* name, uint32_t magic, bool fifo, const Limits& lim) {
  if (!image::exists(plan.dir, name)) return;
  image::Reader r(plan.dir, name, magic);
  pipe_data_entry e;
  while (r.next(e)) {
    check_pipe_data(e, name, lim);
    auto [it, fresh] = plan.pipe_data.try_emplace({fifo, e.pipe_id()});
    if (!fresh)
      fail("image {}: pipe {} has data twice: corrupt or edited images: dump the tree again", name,
           e.pipe_id());
    it->second.size = e.size();
    it->second.bytes = std::string(r.take_raw(e.bytes()));
  }
}

void load_sk_queues(Plan& plan) {
  if (!image::exists(plan.dir, "sk-queues.img")) return;
  image::Reader r(plan.dir, "sk-queues.img", image::magic::kSkQueues);
  sk_packet_entry e;
  while (r.next(e)) {
    auto f = plan.files.find(e.id_for());
    if (f == plan.files.end() || f->second.type() != UNIXSK)
      fail(
          "image sk-queues.img: queued data for file {}, which is not a unix socket in "
          "files.img: corrupt or edited images: dump the tree again",
          e.id_for());
    for (const scm_entry& scm : e.scm()) {
      if (scm.type() != SCM_RIGHTS)
        fail(
            "image sk-queues.img: a message for socket {} carries control data of type {}: "
            "cryo restores only fds (SCM_RIGHTS) and credentials",
            e.id_for(), scm.type());
      for (uint32_t id : scm.rights())
        if (!plan.files.count(id))
          fail(
              "image sk-queues.img: a message for socket {} carries file {}, which files.img "
              "does not hold: corrupt or edited images: dump the tree again",
              e.id_for(), id);
    }
    plan.sk_queues[e.id_for()].emplace_back(r.take_raw(e.length()));
    plan.sk_packets[e.id_for()].push_back(e);
  }
  for (const auto& [id, msgs] : plan.sk_queues) check_socket_queue(id, msgs, "sk-queues.img");
}

// Pages of shared memory and memfds, checked now: they are written after tasks exist.
void load_shared_pages(Plan& plan) {
  auto load = [&](uint64_t shmid, uint64_t limit) {
    if (plan.shared_pages.count(shmid)) return;
    const std::string name = fmt::format("pagemap-shmem-{}.img", shmid);
    SharedPages sp;
    std::tie(sp.pages_id, sp.runs) =
        read_pagemap(plan.dir, name, [&](const std::vector<pagemap_entry>& runs) {
          return check_page_runs(runs, name, nullptr, limit);
        });
    if (!sp.runs.empty())
      sp.end = sp.runs.back().vaddr() + uint64_t{sp.runs.back().nr_pages()} * kernel::kPageSize;
    plan.shared_pages[shmid] = std::move(sp);
  };
  for (const auto& t : plan.tasks)
    for (const auto& v : t.mm.vmas())
      if ((v.status() & image::kVmaAnonShared) && !(v.status() & image::kVmaSysvipc))
        load(v.shmid(), kSharedObjectMax);
  if (!image::exists(plan.dir, "memfd.img")) return;
  image::Reader r(plan.dir, "memfd.img", image::magic::kMemfdInode);
  for (memfd_inode_entry m; r.next(m);) {
    if (!plan.memfd_inodes.emplace(m.inode_id(), m).second)
      fail(
          "image memfd.img: memfd inode {} is listed twice: corrupt or edited images: dump the "
          "tree again",
          m.inode_id());
    // Its pages stop at its size (the last one may reach past it).
    const uint64_t page = kernel::kPageSize;
    load(m.shmid(),
         m.size() >= kSharedObjectMax ? kSharedObjectMax : (m.size() + page - 1) / page * page);
  }
}

// Whether `path` is under /proc/PID/ of a task of the plan.
bool proc_task_in_tree(const Plan& plan, const std::string& path) {
  constexpr std::string_view kProc = "/proc/";
  if (path.compare(0, kProc.size(), kProc) != 0) return false;
  size_t end = kProc.size();
  while (end < path.size() && path[end] >= '0' && path[end] <= '9') end++;
  if (end == kProc.size() || end - kProc.size() > 9 || (end < path.size() && path[end] != '/'))
    return false;
  return plan.find(static_cast<pid_t>(std::stol(path.substr(kProc.size())))) >= 0;
}

}  // namespace

// A file the task will open or map must still be there, of the same kind (a FIFO where a
// regular file was would block its opening) and with the size it had (but a log may have
// been written to or truncated meanwhile); a deleted one comes from its ghost image instead.
bool shares_parent_files(const Plan& plan, const TaskPlan& t) {
  return !t.zombie && t.parent >= 0 && t.ids.files_id() != static_cast<uint32_t>(t.pid()) &&
         t.ids.files_id() == plan.tasks[static_cast<size_t>(t.parent)].ids.files_id();
}

bool needs_group_helper(const Plan& plan, const TaskPlan& t) {
  const auto pgid = static_cast<pid_t>(t.ps.pgid());
  return pgid != t.pid() && plan.find(pgid) < 0 && t.ps.pgid() != plan.tasks[0].ps.pgid();
}

void check_file(const Plan& plan, const reg_file_entry& r, pid_t pid, const char* what) {
  // Paths inside the tree's own mount namespace, which does not exist yet: checked when the
  // restore opens them there.
  if (plan.own_mounts) return;
  if (auto g = plan.ghosts.find(r.id()); g != plan.ghosts.end()) {
    if (!image::exists(plan.dir, fmt::format("ghost-file-{:x}.img", g->second)))
      fail("task {} {}: deleted file {} needs image ghost-file-{:x}.img, which is missing", pid,
           what, printable(r.name()), g->second);
    return;
  }
  // A file under the /proc directory of a task of the tree appears with the task.
  if (proc_task_in_tree(plan, r.name())) return;
  struct stat st;
  // A symlink opened itself (O_PATH | O_NOFOLLOW) is checked itself.
  const bool link = r.has_mode() && S_ISLNK(r.mode());
  if ((link ? ::lstat(r.name().c_str(), &st) : ::stat(r.name().c_str(), &st)) < 0)
    fail_sys("task {} {}: file {} is missing on this machine", pid, what, printable(r.name()));
  if (r.has_mode() && (r.mode() & S_IFMT) != (st.st_mode & S_IFMT))
    fail(
        "task {} {}: {} is now {}, it was {} when dumped (files.img id {}): restore needs the "
        "same file",
        pid, what, printable(r.name()), file_kind(st.st_mode), file_kind(r.mode()), r.id());
  // A log (write-only, O_APPEND) is written on by the tree left running (--leave-running) or
  // by others, or rotated: the task only ever writes at its end, so its size is not checked,
  // as CRIU does.
  const bool log = (r.flags() & O_ACCMODE) == O_WRONLY && (r.flags() & O_APPEND);
  if (r.has_size() && S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) != r.size() && !log)
    fail(
        "task {} {}: file {} changed size since the dump (was {} bytes, now {}): restore "
        "needs the same file",
        pid, what, printable(r.name()), r.size(), st.st_size);
}

Plan load_plan(const std::string& dir, bool shell_job) {
  Plan plan;
  plan.dir = dir;
  if (!image::exists(dir, "inventory.img"))
    fail("no inventory.img in {}: not a cryo/CRIU images directory (give it with -D)", dir);
  inventory_entry inv;
  image::read_one(dir, "inventory.img", image::magic::kInventory, inv);
  if (inv.img_version() != image::kImagesV1_1)
    fail("image inventory.img has version {}, cryo reads version {}", inv.img_version(),
         image::kImagesV1_1);
  plan.tcp_close = inv.tcp_close();
  plan.mnt_ns_id = inv.root_ids().mnt_ns_id();
  plan.own_mounts = image::exists(dir, image::mountpoints_image(plan.mnt_ns_id));
  plan.network_lock = inv.network_lock_method();  // CRIU's default when absent: iptables
  if (plan.network_lock > 2)
    fail("image inventory.img: unknown network lock method {}", plan.network_lock);
  if (inv.has_pre_dump_mode() && !image::exists(dir, "pstree.img"))
    fail(
        "{} holds a pre-dump (memory only): restore the final dump of its chain (the dump made "
        "with --prev-images-dir)",
        dir);

  const Limits lim = Limits::of_system();
  const uint64_t xfeatures = arch::cpu_xfeatures();

  {
    image::Reader r(dir, "pstree.img", image::magic::kPstree);
    pstree_entry e;
    std::set<uint32_t> ids;  // every PID and TID once
    while (r.next(e)) {
      for (uint32_t id : e.threads())
        if (id != e.pid() && !ids.insert(id).second)
          fail("image pstree.img: thread {} is listed twice: corrupt or edited images", id);
      if (!ids.insert(e.pid()).second)
        fail("image pstree.img: PID {} is listed twice: corrupt or edited images", e.pid());
      TaskPlan t;
      t.ps = e;
      plan.tasks.push_back(std::move(t));
    }
  }
  if (plan.tasks.empty()) fail("image pstree.img is empty: no task to restore");

  {
    image::Reader r(dir, "files.img", image::magic::kFiles);
    file_entry e;
    while (r.next(e)) {
      check_file_entry(e, lim);
      if (!plan.files.emplace(e.id(), e).second)
        fail(
            "image files.img: file id {} is listed twice: the fds naming it would get either: "
            "corrupt or edited images: dump the tree again",
            e.id());
    }
  }

  if (image::exists(dir, "remap-fpath.img")) {
    image::Reader r(dir, "remap-fpath.img", image::magic::kRemapFpath);
    remap_file_path_entry e;
    while (r.next(e)) {
      if (e.remap_type() == LINKED) {
        // The file is found by the link the dump made (--link-remap), removed after restore.
        auto orig = plan.files.find(e.orig_id());
        auto link = plan.files.find(e.remap_id());
        if (orig == plan.files.end() || !orig->second.has_reg() || link == plan.files.end() ||
            !link->second.has_reg())
          fail("image remap-fpath.img is corrupt: linked remap of file {} to file {}", e.orig_id(),
               e.remap_id());
        orig->second.mutable_reg()->set_name(link->second.reg().name());
        plan.link_remaps.push_back(link->second.reg().name());
        continue;
      }
      if (e.remap_type() != GHOST)
        fail("image remap-fpath.img: file {} uses a {} remap, which cryo cannot restore yet",
             e.orig_id(), remap_type_Name(e.remap_type()));
      plan.ghosts[e.orig_id()] = e.remap_id();
    }
  }

  if (image::exists(dir, "tty-info.img")) {
    image::Reader r(dir, "tty-info.img", image::magic::kTtyInfo);
    tty_info_entry e;
    while (r.next(e)) plan.ttys[e.id()] = e;
  }

  if (image::exists(dir, "seccomp.img"))
    image::read_one(dir, "seccomp.img", image::magic::kSeccomp, plan.seccomp);

  const FileKinds kinds = make_file_kinds();
  const pid_t root = plan.tasks[0].pid();
  for (size_t i = 0; i < plan.tasks.size(); i++) {
    TaskPlan& t = plan.tasks[i];
    pid_t pid = t.pid();
    if (i > 0) {
      t.parent = plan.find(static_cast<pid_t>(t.ps.ppid()));
      if (t.parent < 0 || t.parent >= static_cast<int>(i))
        fail("image pstree.img is corrupt: parent {} of task {} is not listed before it",
             t.ps.ppid(), pid);
    }
    const std::string core_img = fmt::format("core-{}.img", pid);
    image::read_one(dir, core_img, image::magic::kCore, t.core);
    if (t.core.mtype() != core_entry::X86_64)
      fail("image core-{}.img is for another architecture ({})", pid,
           static_cast<int>(t.core.mtype()));
    if (!t.core.has_tc()) fail("image core-{}.img is corrupt: no task core", pid);
    const uint32_t state = t.core.tc().task_state();
    if (state != image::kTaskAlive && state != image::kTaskDead && state != image::kTaskStopped)
      fail(
          "image {}: tc.task_state {} is none of alive (1), dead (2), stopped (3): corrupt or "
          "edited images",
          core_img, state);
    t.zombie = state == image::kTaskDead;
    if (t.zombie) {
      if (i == 0) fail("image core-{}.img: the root task is a zombie", pid);
      continue;
    }
    if (t.ps.threads_size() == 0 || static_cast<pid_t>(t.ps.threads(0)) != pid)
      fail("image pstree.img is corrupt: task {} does not list itself as its first thread", pid);
    for (int k = 0; k < t.ps.threads_size(); k++) {
      pid_t tid = static_cast<pid_t>(t.ps.threads(k));
      core_entry c;
      if (k == 0)
        c = t.core;
      else
        image::read_one(dir, fmt::format("core-{}.img", tid), image::magic::kCore, c);
      const std::string img = fmt::format("core-{}.img", tid);
      if (!c.has_thread_info() || !c.has_thread_core())
        fail("image {} is corrupt: no registers", img);
      if (k == 0) check_task_core(c.tc(), img);
      arch::check_regs_image(c.thread_info().gpregs(), img);
      arch::check_fpregs_image(c.thread_info().fpregs(), xfeatures, img);
      if (c.thread_core().has_creds()) check_creds(c.thread_core().creds(), img);
      t.threads.push_back(std::move(c));
    }
    image::read_one(dir, fmt::format("ids-{}.img", pid), image::magic::kIds, t.ids);
    if (t.ids.files_id() != static_cast<uint32_t>(pid) && !shares_parent_files(plan, t))
      fail(
          "image ids-{}.img: task {} has the fd table {} of a task that is not its parent: "
          "corrupt or edited images, or a table shared in a way cryo cannot restore",
          pid, pid, t.ids.files_id());
    const std::string mm_img = fmt::format("mm-{}.img", pid);
    image::read_one(dir, mm_img, image::magic::kMm, t.mm);
    check_mm(t.mm, mm_img, lim);
    image::read_one(dir, fmt::format("fs-{}.img", pid), image::magic::kFs, t.fs);
    {
      const std::string img = fmt::format("fdinfo-{}.img", t.ids.files_id());
      image::Reader r(dir, img, image::magic::kFdinfo);
      fdinfo_entry e;
      while (r.next(e)) t.fds.push_back(e);
      std::sort(t.fds.begin(), t.fds.end(),
                [](const auto& a, const auto& b) { return a.fd() < b.fd(); });
      check_fds(t.fds, img, lim);
    }
    {
      const std::string img = fmt::format("pagemap-{}.img", pid);
      std::tie(t.pages_id, t.pages) =
          read_pagemap(dir, img, [&](const std::vector<pagemap_entry>& runs) {
            return check_page_runs(runs, img, &t.mm, kUserTop, /*parent_ok=*/true);
          });
      t.page_chain = std::make_shared<const PageChain>(dir, pid, t.pages_id, t.pages);
    }

    // Everything the task will open or map.
    check_file(plan, plan.reg(t.mm.exe_file_id(), "executable", pid), pid, "executable");
    for (const auto& v : t.mm.vmas())
      if (v.status() & image::kVmaMemfd) {
        auto it = plan.files.find(static_cast<uint32_t>(v.shmid()));
        if (it == plan.files.end() || !it->second.has_memfd())
          fail(
              "image mm-{}.img is corrupt: mapping {:#x} refers to memfd file {}, not in "
              "files.img",
              pid, v.start(), v.shmid());
      } else if (v.status() & (image::kVmaFilePrivate | image::kVmaFileShared))
        check_file(plan, plan.reg(static_cast<uint32_t>(v.shmid()), "mapping", pid), pid,
                   "mapping");
    for (const auto& fd : t.fds) {
      auto it = plan.files.find(fd.id());
      if (it == plan.files.end())
        fail("image files.img is corrupt: task {} fd {} refers to missing file {}", pid, fd.fd(),
             fd.id());
      auto kind = kinds.find(it->second.type());
      if (kind == kinds.end())
        fail("task {} fd {}: file kind {} is not supported yet", pid, fd.fd(),
             static_cast<int>(it->second.type()));
      kind->second->check(plan, it->second, pid, static_cast<int>(fd.fd()));
    }
    check_file(plan, plan.reg(t.fs.cwd_id(), "cwd", pid), pid, "cwd");
    check_file(plan, plan.reg(t.fs.root_id(), "root", pid), pid, "root");
  }
  load_shared_pages(plan);
  load_pipe_data(plan, "pipes-data.img", image::magic::kPipesData, false, lim);
  load_pipe_data(plan, "fifo-data.img", image::magic::kFifoData, true, lim);
  load_sk_queues(plan);
  const TaskPlan& r = plan.tasks[0];
  if (plan.find(static_cast<pid_t>(r.ps.sid())) < 0 ||
      plan.find(static_cast<pid_t>(r.ps.pgid())) < 0)
    plan.shell_job = true;
  if (plan.shell_job && !shell_job)
    fail(
        "the images hold a shell job (task {} is attached to a terminal or a session outside "
        "the tree): restore with --shell-job (-j)",
        root);
  log::info("plan: {} task(s) from {}", plan.tasks.size(), dir);
  return plan;
}

void wait_pids_free(const Plan& plan) {
  using namespace std::chrono;
  const auto deadline = steady_clock::now() + seconds(30);
  bool said = false;
  // Every PID and TID of the tree: a thread's TID is taken as surely as a process's PID.
  std::vector<pid_t> ids;
  for (const auto& t : plan.tasks) {
    ids.push_back(t.pid());
    for (int k = 1; k < t.ps.threads_size(); k++)
      ids.push_back(static_cast<pid_t>(t.ps.threads(k)));
    if (needs_group_helper(plan, t)) ids.push_back(static_cast<pid_t>(t.ps.pgid()));
  }
  for (pid_t pid : ids) {
    for (;;) {
      interrupt_point();
      auto st = proc::try_read_file(fmt::format("/proc/{}/stat", pid));
      if (!st) break;
      proc::Stat s;
      try {
        s = proc::parse_stat(*st);
      } catch (const Error&) {
        break;
      }
      // PF_EXITING: a killed process whose memory is being torn down (a dump that killed it
      // just now): its PID is released in a moment, as a zombie's.
      constexpr uint64_t kPfExiting = 0x4;
      const bool exiting = s.state == 'Z' || s.state == 'X' || (s.flags & kPfExiting);
      if (!exiting) {
        pid_t tgid = s.pid;
        if (auto status = proc::try_read_file(fmt::format("/proc/{}/status", pid))) try {
            tgid = proc::parse_status(*status).tgid;
          } catch (const Error&) {
          }
        if (tgid != pid)
          fail(
              "PID {} is in use by a thread of process {} ({}): stop that process or restore "
              "where PID {} is free",
              pid, tgid, s.comm, pid);
        fail(
            "PID {} is in use by process {} ({}): stop that process or restore where PID {} "
            "is free",
            pid, s.pid, s.comm, pid);
      }
      if (steady_clock::now() > deadline)
        fail(
            "PID {} is still held by an exiting process or a zombie of process {} after 30 s: "
            "its parent must reap it",
            pid, s.ppid);
      if (!said) {
        log::info("waiting for PID {} to be released (exiting, or a zombie of {})", pid, s.ppid);
        said = true;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
  }
}

}  // namespace cryo::restore
