#include "restore/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "base/error.h"
#include "base/log.h"
#include "base/strings.h"
#include "image/file_entry.h"
#include "infect/scratch_arena.h"
#include "kernel/syscalls.h"

namespace cryo::restore {

Fd open_checked(const std::string& path, uint32_t flags, bool has_mode, uint32_t mode,
                const std::string& what) {
  flags &= ~static_cast<uint32_t>(O_CREAT | O_EXCL | O_TRUNC);
  Fd fd(::open(path.c_str(), static_cast<int>(flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)));
  struct stat st;
  if (!fd) {
    int err = errno;
    // A FIFO opened for writing without a reader says ENXIO when non-blocking.
    if (err == ENXIO && ::stat(path.c_str(), &st) == 0 && has_mode &&
        (st.st_mode & S_IFMT) != (mode & S_IFMT))
      fail("{}: {} is now {}, it was {} when dumped: restore needs the same file", what,
           printable(path), file_kind(st.st_mode), file_kind(mode));
    fail_errno(err, "{}: cannot open {}", what, printable(path));
  }
  if (::fstat(fd.get(), &st) < 0) fail_sys("{}: cannot stat {}", what, printable(path));
  const bool fifo_ok = !has_mode && !S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode);
  if (has_mode ? (st.st_mode & S_IFMT) != (mode & S_IFMT) : !fifo_ok)
    fail("{}: {} is now {}, it was {} when dumped: restore needs the same file", what,
         printable(path), file_kind(st.st_mode),
         has_mode ? file_kind(mode) : "not a FIFO or socket");
  // (An O_PATH file has no status flags to change.)
  if (!(flags & (O_NONBLOCK | O_PATH))) {
    int fl = ::fcntl(fd.get(), F_GETFL);
    if (fl < 0 || ::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK) < 0)
      fail_sys("{}: cannot clear O_NONBLOCK on {}", what, printable(path));
  }
  return fd;
}

FileSet::FileSet(const Plan& plan, Ttys& ttys)
    : plan_(plan), ttys_(ttys), kinds_(make_file_kinds()) {
  for (const TaskPlan& t : plan.tasks)
    if (!shares_parent_files(plan, t))
      for (const auto& fdi : t.fds) {
        users_[fdi.id()]++;
        held_.insert(fdi.id());
      }
  std::vector<uint32_t> needed;
  for (const auto& [id, f] : plan.files) {
    if (!users_.count(id)) continue;  // not an fd's: made (or not) for other reasons
    needed.clear();
    kind(f).needs(f, plan, &needed);
    for (uint32_t n : needed) users_[n]++;
  }
}

void FileSet::done_with(const TaskPlan& t) {
  for (const auto& fdi : t.fds) release(fdi.id());
  log::debug("task {}: cryo now holds {} files of the tree", t.pid(), files_.size());
}

void FileSet::release(uint32_t id) {
  auto u = users_.find(id);
  if (u == users_.end() || u->second == 0) return;
  if (--u->second) return;
  files_.erase(id);
  released_.insert(id);
  std::vector<uint32_t> needed;
  const file_entry& f = entry(id);
  kind(f).needs(f, plan_, &needed);
  for (uint32_t n : needed) release(n);
}

FileSet::~FileSet() = default;

FileKind& FileSet::kind(const file_entry& f) {
  auto it = kinds_.find(f.type());
  if (it == kinds_.end())
    fail("file {}: kind {} is not supported yet", f.id(), static_cast<int>(f.type()));
  return *it->second;
}

void FileSet::keep() {
  for (auto& [type, k] : kinds_) k->keep();
}

const file_entry& FileSet::entry(uint32_t id) const {
  auto fe = plan_.files.find(id);
  if (fe == plan_.files.end()) fail("image files.img is corrupt: no file {}", id);
  return fe->second;
}

namespace {

// The open file's owner and its signal, as dumped (O_ASYNC is set by the task: the kernel
// signals the fd number that set it). The owner is set with the ids it
// had (the kernel checks them when it signals the owner): cryo's thread takes them for the
// call, by raw syscall so that no other thread of cryo's changes.
void restore_owner(int fd, const file_entry& f) {
  const fown_entry* o = image::file_owner(f);
  if (o && o->signum() && ::fcntl(fd, F_SETSIG, o->signum()) < 0)
    fail_sys("file {}: cannot set its owner's signal to {}", f.id(), o->signum());
  if (o && o->pid()) {
    f_owner_ex ex{static_cast<__pid_type>(o->pid_type()), static_cast<pid_t>(o->pid())};
    const bool as_other = o->uid() || o->euid();
    if (as_other && ::syscall(SYS_setresuid, o->uid(), o->euid(), -1) < 0)
      fail_sys("file {}: cannot take the ids {}/{} of its owner", f.id(), o->uid(), o->euid());
    int r = ::fcntl(fd, F_SETOWN_EX, &ex);
    int err = errno;
    if (as_other && ::syscall(SYS_setresuid, 0, 0, -1) < 0)
      fail_sys("cannot take back root's ids after setting the owner of file {}", f.id());
    if (r < 0)
      fail_errno(err, "file {}: cannot give it its owner {} {} again", f.id(),
                 ex.type == F_OWNER_PGRP ? "process group" : "task", ex.pid);
  }
}

}  // namespace

int FileSet::get(uint32_t id) {
  if (auto it = files_.find(id); it != files_.end()) return it->second.get();
  if (released_.count(id))
    fail("internal: file {} is needed again after cryo let go of it: restore cannot go on", id);
  const file_entry& f = entry(id);
  Fd fd = kind(f).open(f, *this);
  restore_owner(fd.get(), f);
  // A file no task holds (only carried in a message) has no task to set its O_ASYNC: cryo
  // does. Its signals then name cryo's fd, as they named the sender's.
  if ((image::file_flags(f) & O_ASYNC) && !held_.count(id)) {
    int fl = ::fcntl(fd.get(), F_GETFL);
    if (fl < 0 || ::fcntl(fd.get(), F_SETFL, fl | O_ASYNC) < 0)
      fail_sys("file {}: cannot set O_ASYNC on it", id);
  }
  int raw = fd.get();
  files_[id] = std::move(fd);
  return raw;
}

void FileSet::adopt(uint32_t id, Fd fd) {
  files_[id] = std::move(fd);
}

void restore_files(RemoteTask& rt, const TaskPlan& t, FileSet& files) {
  const pid_t pid = t.pid();
  if (t.fds.empty()) return;
  // Files are placed in increasing order of fd number, with the task's pidfd on cryo above
  // them all and above any number a kind needs free for a while.
  uint64_t top = t.fds.back().fd() + 1;
  for (const auto& fdi : t.fds) {
    const file_entry& f = files.entry(fdi.id());
    top = std::max(top, files.kind(f).needs_free(f));
  }
  FdInstaller installer(rt, top);
  // A file about the task's own fds (/proc/PID/fdinfo/N) is opened once they are in place.
  std::vector<FdInstaller::Placement> all;
  std::vector<const fdinfo_entry*> late;
  all.reserve(t.fds.size());
  for (const auto& fdi : t.fds) {
    const file_entry& f = files.entry(fdi.id());
    if (files.kind(f).after_others(f)) {
      late.push_back(&fdi);
      continue;
    }
    all.push_back({fdi.fd(), files.get(fdi.id()), (fdi.flags() & FD_CLOEXEC) != 0});
    log::debug("task {} fd {}: file {}", pid, fdi.fd(), fdi.id());
  }
  installer.install_all(all);
  for (const fdinfo_entry* fdi : late) {
    const uint64_t got = installer.take(files.get(fdi->id()),
                                        fmt::format("file {} for fd {}", fdi->id(), fdi->fd()));
    const bool cloexec = fdi->flags() & FD_CLOEXEC;
    if (got != fdi->fd()) {
      rt.check("dup3", SYS_dup3, got, fdi->fd(), cloexec ? O_CLOEXEC : 0);
      rt.check("close", SYS_close, got);
    } else if (!cloexec) {
      rt.check("fcntl(F_SETFD)", SYS_fcntl, got, F_SETFD, 0);
    }
    log::debug("task {} fd {}: file {} (after the others)", pid, fdi->fd(), fdi->id());
  }
  // O_ASYNC, once per open file, by the task itself: the signal's si_fd is the number that
  // set it.
  for (const auto& fdi : t.fds) {
    const file_entry& f = files.entry(fdi.id());
    const uint32_t flags = image::file_flags(f);
    if (!(flags & O_ASYNC) || !files.first_async(fdi.id())) continue;
    const uint64_t keep = flags & (O_APPEND | O_ASYNC | O_DIRECT | O_NONBLOCK);
    rt.check("fcntl(F_SETFL, O_ASYNC)", SYS_fcntl, fdi.fd(), F_SETFL, keep);
  }
  for (const auto& fdi : t.fds) {
    const file_entry& f = files.entry(fdi.id());
    files.kind(f).settle(rt, t, fdi, installer, files);
  }
  installer.close();
}

void restore_fs(RemoteTask& rt, const TaskPlan& t, const Plan& plan) {
  const pid_t pid = t.pid();
  const std::string& root = plan.reg(t.fs.root_id(), "root", pid).name();
  const std::string& cwd = plan.reg(t.fs.cwd_id(), "cwd", pid).name();
  // The working directory is a path from the outer root: enter it before the chroot.
  ScratchArena arena(rt);
  rt.syscall(SYS_chdir, arena.put_str(cwd)).or_fail("cannot enter its working directory {}", cwd);
  if (root != "/") rt.check("chroot", SYS_chroot, arena.put_str(root));
  if (t.fs.has_umask()) rt.check("umask", SYS_umask, t.fs.umask());
}

}  // namespace cryo::restore
