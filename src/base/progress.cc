#include "base/progress.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "base/fault.h"
#include "base/log.h"

namespace cryo::progress {
namespace {

using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kFirstDraw = 1s;  // a shorter action shows nothing
constexpr auto kTick = 100ms;    // at most 10 redraws a second
constexpr double kPageMiB = 4096.0 / (1 << 20);
constexpr char kErase[] = "\r\033[K";

std::atomic<bool> g_on{false};
std::atomic<int64_t> g_total{0};
std::atomic<uint64_t> g_done{0};
// CRYO_FAULT=slow-pages=MS: add_done() sleeps MS ms, so that tests see a short dump or
// restore last long enough for the display. Read only when a reporter runs.
long g_slow_ms = -1;

// Guards what follows and the terminal line itself.
std::mutex g_mu;
std::condition_variable g_cv;
std::string g_action;
std::string g_phase;
bool g_shown = false;
bool g_stop = false;
std::thread g_thread;

void put(const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(STDERR_FILENO, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

void erase_locked() {
  if (!g_shown) return;
  put(kErase);
  g_shown = false;
}

// A background job must not draw (with TOSTOP it would even be stopped for it).
bool in_foreground() {
  pid_t fg = ::tcgetpgrp(STDERR_FILENO);
  return fg >= 0 && fg == ::getpgrp();
}

unsigned width() {
  winsize ws{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

void run() {
  const auto start = clock::now();
  // Samples of the last second, for the rate.
  std::deque<std::pair<clock::time_point, uint64_t>> samples;
  auto next = start + kTick;
  std::unique_lock lk(g_mu);
  for (;;) {
    if (g_cv.wait_until(lk, next, [] { return g_stop; })) break;
    const auto now = clock::now();
    next = now + kTick;
    const uint64_t done = g_done.load(std::memory_order_relaxed);
    samples.emplace_back(now, done);
    while (samples.size() > 2 && now - samples.front().first > 1s) samples.pop_front();
    if (now - start < kFirstDraw || !in_foreground()) continue;
    double rate = 0;
    const double dt = std::chrono::duration<double>(now - samples.front().first).count();
    if (dt > 0.05) rate = static_cast<double>(done - samples.front().second) * kPageMiB / dt;
    const int64_t total = g_total.load(std::memory_order_relaxed);
    const uint64_t shown_total =
        std::max<uint64_t>(total > 0 ? static_cast<uint64_t>(total) : 0, done);
    std::string line = fmt::format(
        "\r{}\033[K", format_line(g_action, g_phase, done, shown_total, rate,
                                  std::chrono::duration<double>(now - start).count(), width()));
    put(line);
    g_shown = true;
  }
}

}  // namespace

std::string format_line(const std::string& action, const std::string& phase, uint64_t done,
                        uint64_t total, double rate, double elapsed, unsigned cols) {
  std::string s = fmt::format("cryo {}: {}", action, phase.empty() ? "starting" : phase);
  if (total > 0) {
    s += fmt::format(" | {}/{} pages ({}%) | {:.0f} MiB/s", done, total, done * 100 / total, rate);
  }
  s += fmt::format(" | {:.1f} s", elapsed);
  // One line only: a wrapped line could not be redrawn in place.
  if (cols > 1 && s.size() > cols - 1) s.resize(cols - 1);
  return s;
}

Reporter::Reporter(const std::string& action) {
  if (g_thread.joinable() || log::level() <= 0 || !::isatty(STDERR_FILENO)) return;
  {
    std::lock_guard lk(g_mu);
    g_action = action;
    g_phase.clear();
    g_shown = false;
    g_stop = false;
  }
  g_total.store(0, std::memory_order_relaxed);
  g_done.store(0, std::memory_order_relaxed);
  g_slow_ms = fault_number("slow-pages");
  // The reporter takes no signal: SIGINT/SIGTERM/... go to cryo's working threads, and the
  // per-thread wait alarms are not its business.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    g_thread = std::thread(run);
    g_on.store(true, std::memory_order_relaxed);
  } catch (const std::system_error&) {
    // No thread, no progress: the action itself goes on.
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

Reporter::~Reporter() {
  stop();
}

void Reporter::stop() {
  if (!g_thread.joinable()) return;
  {
    std::lock_guard lk(g_mu);
    g_stop = true;
  }
  g_cv.notify_all();
  g_thread.join();
  std::lock_guard lk(g_mu);
  erase_locked();
  g_on.store(false, std::memory_order_relaxed);
}

bool active() {
  return g_on.load(std::memory_order_relaxed);
}

void phase(const std::string& name) {
  if (!g_on.load(std::memory_order_relaxed)) return;
  std::lock_guard lk(g_mu);
  g_phase = name;
}

void add_total(int64_t delta) {
  if (g_on.load(std::memory_order_relaxed)) g_total.fetch_add(delta, std::memory_order_relaxed);
}

void add_done(uint64_t pages) {
  if (!g_on.load(std::memory_order_relaxed)) return;
  g_done.fetch_add(pages, std::memory_order_relaxed);
  if (g_slow_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(g_slow_ms));
}

Hold::Hold() {
  if (!g_on.load(std::memory_order_relaxed)) return;
  g_mu.lock();
  held_ = true;
  erase_locked();
}

Hold::~Hold() {
  if (held_) g_mu.unlock();
}

}  // namespace cryo::progress
