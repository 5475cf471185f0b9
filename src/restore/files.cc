#include "restore/files.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <map>

#include "base/error.h"
#include "base/log.h"

namespace cryo::restore {
namespace {

// The terminal cryo itself runs in: a shell job's terminal fds are attached to it.
std::string own_terminal() {
  for (int fd : {0, 1, 2}) {
    char buf[256];
    if (::isatty(fd) && ::ttyname_r(fd, buf, sizeof buf) == 0) return buf;
  }
  fail("the images hold a shell job but cryo does not run in a terminal: run cryo restore -j "
       "from the terminal the job should use");
}

}  // namespace

void restore_files(RemoteTask& rt, const TaskPlan& t, const Plan& plan) {
  const pid_t pid = t.pid();
  std::map<uint32_t, int> placed;  // file id -> first fd holding it
  for (const auto& fdi : t.fds) {
    const int target = static_cast<int>(fdi.fd());
    const uint64_t cloexec = (fdi.flags() & FD_CLOEXEC) ? O_CLOEXEC : 0;
    if (auto it = placed.find(fdi.id()); it != placed.end()) {
      rt.check("dup3", SYS_dup3, {static_cast<uint64_t>(it->second), static_cast<uint64_t>(target), cloexec});
      continue;
    }
    const file_entry& f = plan.files.at(fdi.id());
    std::string path;
    uint32_t flags;
    uint64_t pos = 0;
    if (f.type() == TTY) {
      path = own_terminal();
      flags = f.tty().flags();
    } else {
      path = f.reg().name();
      flags = f.reg().flags();
      pos = f.reg().pos();
    }
    flags &= ~static_cast<uint32_t>(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC);
    flags |= O_NOCTTY;
    uint64_t p = rt.put_str(0, path);
    long got = rt.syscall(SYS_openat, {static_cast<uint64_t>(AT_FDCWD), p, flags | cloexec, 0});
    if (got < 0)
      fail_errno(static_cast<int>(-got), "task {} fd {}: cannot open {}", pid, target, path);
    if (f.type() == REG && pos) {
      long r = rt.syscall(SYS_lseek, {static_cast<uint64_t>(got), pos, SEEK_SET});
      if (r < 0 && r != -ESPIPE)
        fail_errno(static_cast<int>(-r), "task {} fd {}: cannot seek {} to {}", pid, target, path, pos);
    }
    // Fds are placed in increasing order, so the lowest free number is at most `target`.
    if (got != target) {
      rt.check("dup3", SYS_dup3, {static_cast<uint64_t>(got), static_cast<uint64_t>(target), cloexec});
      rt.check("close", SYS_close, {static_cast<uint64_t>(got)});
    }
    placed[fdi.id()] = target;
    log::debug("task {} fd {}: {}", pid, target, path);
  }
}

void restore_fs(RemoteTask& rt, const TaskPlan& t, const Plan& plan) {
  const pid_t pid = t.pid();
  const std::string& root = plan.reg(t.fs.root_id(), "root", pid).name();
  const std::string& cwd = plan.reg(t.fs.cwd_id(), "cwd", pid).name();
  if (root != "/") {
    rt.check("chroot", SYS_chroot, {rt.put_str(0, root)});
  }
  long r = rt.syscall(SYS_chdir, {rt.put_str(0, cwd)});
  if (r < 0) fail_errno(static_cast<int>(-r), "task {}: cannot enter its working directory {}", pid, cwd);
  if (t.fs.has_umask()) rt.check("umask", SYS_umask, {t.fs.umask()});
}

}  // namespace cryo::restore
