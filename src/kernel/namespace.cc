#include "kernel/namespace.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>

#include <cstdlib>
#include <exception>
#include <thread>

#include "base/error.h"
#include "base/fd.h"
#include "proc/proc.h"

namespace cryo::kernel {

uint64_t ns_inode(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) < 0) fail_sys("cannot read the namespace {}", path);
  return st.st_ino;
}

void in_namespace(const std::string& path, int cflag, const std::function<void()>& fn) {
  Fd ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) fail_sys("cannot open namespace {}", path);
  std::exception_ptr error;
  std::thread worker([&] {
    try {
      // A mount namespace is joined only by a task with fs information of its own.
      if (cflag == CLONE_NEWNS && ::unshare(CLONE_FS) < 0)
        fail_sys("cannot give a thread of cryo its own fs information to enter {}", path);
      if (::setns(ns.get(), cflag) < 0) fail_sys("cannot enter namespace {} (setns)", path);
      fn();
    } catch (...) {
      error = std::current_exception();
    }
  });
  worker.join();
  if (error) std::rethrow_exception(error);
}

std::vector<pid_t> ns_pids(const std::string& status_path) {
  const std::string text = proc::read_file(status_path);
  const auto at = text.find("\nNSpid:");
  if (at == std::string::npos) fail("{} has no NSpid line (a kernel older than 4.1?)", status_path);
  std::vector<pid_t> pids;
  const char* p = text.c_str() + at + 7;
  for (;;) {
    while (*p == ' ' || *p == '\t') p++;
    if (*p < '0' || *p > '9') break;
    char* end;
    pids.push_back(static_cast<pid_t>(std::strtol(p, &end, 10)));
    p = end;
  }
  if (pids.empty()) fail("{}: cannot parse its NSpid line", status_path);
  return pids;
}

}  // namespace cryo::kernel
