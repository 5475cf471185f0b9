#include "net/run_tool.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "base/deadline.h"
#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"

extern char** environ;

namespace cryo::net {
namespace {

std::string find_program(const std::string& name) {
  const std::string path = ::getenv("PATH") ? ::getenv("PATH") : "/usr/sbin:/usr/bin:/sbin:/bin";
  size_t at = 0;
  while (at <= path.size()) {
    size_t end = path.find(':', at);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(at, end - at);
    if (!dir.empty()) {
      std::string p = dir + "/" + name;
      if (::access(p.c_str(), X_OK) == 0) return p;
    }
    at = end + 1;
  }
  return "";
}

}  // namespace

ToolResult run_tool(const std::vector<std::string>& argv, const std::string& input,
                    const char* package, int seconds) {
  const std::string prog = find_program(argv[0]);
  if (prog.empty())
    fail("cannot find the program {} (install Debian's {} package)", argv[0], package);
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) < 0) fail_sys("cannot run {}: pipe", argv[0]);
  Fd in_r(in[0]), in_w(in[1]);
  if (::pipe2(out, O_CLOEXEC) < 0) fail_sys("cannot run {}: pipe", argv[0]);
  Fd out_r(out[0]), out_w(out[1]);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_r.get(), 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), 2);
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  // cryo's stop-signal handling and blocked signals are not the tool's.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int err = posix_spawn(&pid, prog.c_str(), &fa, &at, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (err) fail_errno(err, "cannot run {}", prog);
  in_r.reset();
  out_w.reset();

  ToolResult r;
  Deadline deadline{std::chrono::seconds(seconds)};
  size_t sent = 0;
  if (input.empty()) in_w.reset();
  ::fcntl(in_w.get(), F_SETFL, O_NONBLOCK);
  bool open_out = true;
  while (open_out && !deadline.expired()) {
    pollfd p[2] = {{out_r.get(), POLLIN, 0}, {in_w ? in_w.get() : -1, POLLOUT, 0}};
    int ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline.remaining()).count());
    if (::poll(p, 2, ms + 1) < 0 && errno != EINTR) break;
    if (p[1].revents & (POLLOUT | POLLERR | POLLHUP)) {
      ssize_t n = ::write(in_w.get(), input.data() + sent, input.size() - sent);
      if (n > 0) sent += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EINTR) sent = input.size();
      if (sent == input.size()) in_w.reset();
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[4096];
      ssize_t n = ::read(out_r.get(), buf, sizeof buf);
      if (n > 0) r.output.append(buf, static_cast<size_t>(n));
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) open_out = false;
    }
  }
  int st = 0;
  pid_t w = 0;
  while (!open_out && !deadline.expired()) {
    w = ::waitpid(pid, &st, WNOHANG);
    if (w == pid || (w < 0 && errno != EINTR)) break;
    ::usleep(1000);
  }
  if (w != pid) {  // out of time
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &st, 0);
    fail("{} did not finish within {} s", prog, seconds);
  }
  if (WIFEXITED(st)) r.status = WEXITSTATUS(st);
  while (!r.output.empty() && r.output.back() == '\n') r.output.pop_back();
  log::debug("ran {} ({} bytes of input): status {} {}", prog, input.size(), r.status, r.output);
  return r;
}

}  // namespace cryo::net
