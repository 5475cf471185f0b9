#include "cli/action_script.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstring>

#include "base/deadline.h"
#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"

extern char** environ;

namespace cryo::cli {
namespace {

constexpr auto kScriptTimeout = std::chrono::seconds(60);

void run_script(const std::string& script, const std::string& action, const std::string& dir,
                pid_t root) {
  // The environment is built before fork: the child only execs.
  std::vector<std::string> env;
  for (char** e = environ; *e; e++)
    if (std::strncmp(*e, "CRTOOLS_", 8) != 0) env.push_back(*e);
  env.push_back("CRTOOLS_SCRIPT_ACTION=" + action);
  env.push_back("CRTOOLS_IMAGE_DIR=" + dir);
  if (root > 0) env.push_back("CRTOOLS_INIT_PID=" + std::to_string(root));
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const char* argv[] = {"sh", "-c", script.c_str(), nullptr};
  log::info("running action script {} for {}", script, action);

  pid_t pid = ::fork();
  if (pid < 0) fail_sys("cannot start action script {} ({})", script, action);
  if (pid == 0) {
    ::setpgid(0, 0);
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, STDIN_FILENO);
    ::execve("/bin/sh", const_cast<char**>(argv), envp.data());
    ::_exit(127);
  }
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  Deadline deadline(kScriptTimeout);
  int st = 0;
  for (;;) {
    pid_t w = ::waitpid(pid, &st, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) fail_sys("cannot wait for action script {}", script);
    if (deadline.expired()) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      fail("action script {} ran longer than {} s at {}: killed, the operation is aborted", script,
           deadline.seconds(), action);
    }
    if (pidfd) {
      pollfd p{pidfd.get(), POLLIN, 0};
      ::poll(&p, 1, 100);
    } else {
      ::usleep(10000);
    }
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return;
  fail("action script {} failed at {} ({}): the operation is aborted", script, action,
       WIFEXITED(st) ? fmt::format("exit status {}", WEXITSTATUS(st))
                     : fmt::format("killed by signal {}", WTERMSIG(st)));
}

}  // namespace

void add_action_scripts(const Options& o, hooks::Hooks* h) {
  if (o.action_scripts.empty()) return;
  char buf[PATH_MAX];
  std::string dir = ::realpath(o.images_dir.c_str(), buf) ? buf : o.images_dir;
  for (const auto& script : o.action_scripts)
    h->add([script, dir](const std::string& action, pid_t root) {
      run_script(script, action, dir, root);
    });
}

}  // namespace cryo::cli
