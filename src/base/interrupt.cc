#include "base/interrupt.h"

#include <signal.h>

#include <cstring>

#include "base/error.h"

namespace cryo {
namespace {

volatile sig_atomic_t g_signal = 0;
constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

void note(int sig) {
  if (!g_signal) g_signal = sig;
}

}  // namespace

void catch_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = note;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigset_t set;
  sigemptyset(&set);
  for (int sig : kStopSignals) {
    ::sigaction(sig, &sa, nullptr);
    sigaddset(&set, sig);
  }
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
}

void default_stop_signals() {
  for (int sig : kStopSignals) ::signal(sig, SIG_DFL);
}

int stop_signal() {
  return g_signal;
}

void interrupt_point() {
  if (int sig = g_signal) fail("interrupted by SIG{} ({})", sigabbrev_np(sig), strsignal(sig));
}

}  // namespace cryo
