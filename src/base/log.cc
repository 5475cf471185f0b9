#include "base/log.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <optional>

#include "base/error.h"
#include "base/own_file.h"
#include "base/progress.h"

namespace cryo::log {
namespace {

int g_level = kWarn;
int g_fd = STDERR_FILENO;
std::mutex g_mu;
const auto g_start = std::chrono::steady_clock::now();

std::string stamp(Level lvl) {
  double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - g_start).count();
  const char* tag = lvl == kError ? "Error " : lvl == kWarn ? "Warn  " : "";
  return fmt::format("({:012.6f}) {}", t, tag);
}

void put(int fd, const std::string& s) {
  // A progress line on the terminal is erased first, and redrawn after.
  std::optional<progress::Hold> hold;
  if (fd == STDERR_FILENO) hold.emplace();
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += n;
  }
}

}  // namespace

void init(const std::string& path, int lvl) {
  g_level = lvl;
  // Again for each request of an RPC connection: the previous request's file is closed.
  int fd = path.empty() || path == "-" ? STDERR_FILENO : open_own_file(path, "log file").release();
  std::lock_guard lk(g_mu);
  if (g_fd != STDERR_FILENO) ::close(g_fd);
  g_fd = fd;
}

int level() {
  return g_level;
}

void write(Level lvl, const std::string& line) {
  std::lock_guard lk(g_mu);
  put(g_fd, stamp(lvl) + line + "\n");
}

void user(Level lvl, const std::string& line) {
  std::lock_guard lk(g_mu);
  if (g_fd != STDERR_FILENO) put(g_fd, stamp(lvl) + line + "\n");
  if (g_level >= lvl || lvl == kError)
    put(STDERR_FILENO, (lvl == kError ? "Error: " : lvl == kWarn ? "Warn: " : "") + line + "\n");
}

}  // namespace cryo::log
