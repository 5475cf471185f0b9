#include "restore/plan.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "base/error.h"
#include "base/log.h"
#include "image/image.h"
#include "inventory.pb.h"
#include "kernel/syscalls.h"
#include "proc/proc.h"
#include "remap-file-path.pb.h"
#include "restore/tty.h"

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

// A file the task will open or map must still be there, with the size it had; a deleted
// one comes from its ghost image instead.
void check_file(const Plan& plan, const reg_file_entry& r, pid_t pid, const char* what) {
  if (auto g = plan.ghosts.find(r.id()); g != plan.ghosts.end()) {
    if (!image::exists(plan.dir, fmt::format("ghost-file-{:x}.img", g->second)))
      fail("task {} {}: deleted file {} needs image ghost-file-{:x}.img, which is missing", pid,
           what, r.name(), g->second);
    return;
  }
  struct stat st;
  if (::stat(r.name().c_str(), &st) < 0)
    fail_sys("task {} {}: file {} is missing on this machine", pid, what, r.name());
  if (r.has_size() && S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) != r.size())
    fail(
        "task {} {}: file {} changed size since the dump (was {} bytes, now {}): restore "
        "needs the same file",
        pid, what, r.name(), r.size(), st.st_size);
}

}  // namespace

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

  {
    image::Reader r(dir, "pstree.img", image::magic::kPstree);
    pstree_entry e;
    while (r.next(e)) {
      TaskPlan t;
      t.ps = e;
      plan.tasks.push_back(std::move(t));
    }
  }
  if (plan.tasks.empty()) fail("image pstree.img is empty: no task to restore");

  {
    image::Reader r(dir, "files.img", image::magic::kFiles);
    file_entry e;
    while (r.next(e)) plan.files[e.id()] = e;
  }

  if (image::exists(dir, "remap-fpath.img")) {
    image::Reader r(dir, "remap-fpath.img", image::magic::kRemapFpath);
    remap_file_path_entry e;
    while (r.next(e)) {
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
    image::read_one(dir, fmt::format("core-{}.img", pid), image::magic::kCore, t.core);
    if (t.core.mtype() != core_entry::X86_64)
      fail("image core-{}.img is for another architecture ({})", pid,
           static_cast<int>(t.core.mtype()));
    if (!t.core.has_tc()) fail("image core-{}.img is corrupt: no task core", pid);
    t.zombie = t.core.tc().task_state() == image::kTaskDead;
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
      if (!c.has_thread_info() || !c.has_thread_core())
        fail("image core-{}.img is corrupt: no registers", tid);
      t.threads.push_back(std::move(c));
    }
    image::read_one(dir, fmt::format("ids-{}.img", pid), image::magic::kIds, t.ids);
    image::read_one(dir, fmt::format("mm-{}.img", pid), image::magic::kMm, t.mm);
    image::read_one(dir, fmt::format("fs-{}.img", pid), image::magic::kFs, t.fs);
    {
      image::Reader r(dir, fmt::format("fdinfo-{}.img", t.ids.files_id()), image::magic::kFdinfo);
      fdinfo_entry e;
      while (r.next(e)) t.fds.push_back(e);
      std::sort(t.fds.begin(), t.fds.end(),
                [](const auto& a, const auto& b) { return a.fd() < b.fd(); });
    }
    {
      image::Reader r(dir, fmt::format("pagemap-{}.img", pid), image::magic::kPagemap);
      pagemap_head head;
      if (!r.next(head)) fail("image pagemap-{}.img is truncated: no header", pid);
      t.pages_id = head.pages_id();
      pagemap_entry e;
      uint64_t total = 0;
      while (r.next(e)) {
        if (e.flags() & (image::kPeParent | image::kPeLazy))
          fail("image pagemap-{}.img needs parent or lazy pages: not supported yet", pid);
        total += e.nr_pages();
        t.pages.push_back(e);
      }
      std::string pages = fmt::format("{}/pages-{}.img", dir, t.pages_id);
      struct stat st;
      if (::stat(pages.c_str(), &st) < 0) fail_sys("cannot open image {}", pages);
      if (static_cast<uint64_t>(st.st_size) != total * kernel::kPageSize)
        fail(
            "image {} is truncated or corrupt: pagemap-{}.img lists {} pages ({} bytes), the "
            "file holds {} bytes",
            pages, pid, total, total * kernel::kPageSize, st.st_size);
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
      if (it->second.type() == TTY) {
        if (!plan.ttys.count(it->second.tty().tty_info_id()))
          fail(
              "image files.img is corrupt: task {} fd {} is terminal {}, which tty-info.img does "
              "not hold",
              pid, fd.fd(), it->second.tty().tty_info_id());
        if (!tty_in_tree(plan, it->second.tty())) plan.shell_job = true;
      } else if (it->second.type() == REG) {
        check_file(plan, it->second.reg(), pid, "open file");
      } else if (it->second.type() == FIFO) {
        check_file(plan, plan.reg(it->second.fifo().regf_id(), "FIFO", pid), pid, "FIFO");
      } else if (it->second.type() == PIPE || it->second.type() == EVENTFD ||
                 it->second.type() == UNIXSK || it->second.type() == INETSK ||
                 it->second.type() == TIMERFD || it->second.type() == SIGNALFD ||
                 it->second.type() == EVENTPOLL || it->second.type() == MEMFD ||
                 it->second.type() == INOTIFY || it->second.type() == FANOTIFY) {
      } else {
        fail("task {} fd {}: file kind {} is not supported yet", pid, fd.fd(),
             static_cast<int>(it->second.type()));
      }
    }
    plan.reg(t.fs.cwd_id(), "cwd", pid);
    plan.reg(t.fs.root_id(), "root", pid);
  }
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
  }
  for (pid_t pid : ids) {
    for (;;) {
      auto st = proc::try_read_file(fmt::format("/proc/{}/stat", pid));
      if (!st) break;
      proc::Stat s;
      try {
        s = proc::parse_stat(*st);
      } catch (const Error&) {
        break;
      }
      if (s.state != 'Z' && s.state != 'X') {
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
        fail("PID {} is still held by a zombie of process {} after 30 s: its parent must reap it",
             pid, s.ppid);
      if (!said) {
        log::info("waiting for PID {} to be released (zombie of {})", pid, s.ppid);
        said = true;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
  }
}

}  // namespace cryo::restore
