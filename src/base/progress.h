// Progress of a long dump or restore on the terminal: the phase, pages done of the total and
// the rate, redrawn in place on stderr at most 10 times a second once the action has run
// for a second, and erased when it ends. Shown only when stderr is a terminal and the log
// level is above 0; otherwise every call here is a relaxed load and a return.
//
// The counters are plain atomics: the memory loops add to them from any thread and a
// reporter thread (all signals blocked, so the stop signals still reach cryo's own threads)
// reads them. Nothing here waits on the tree or touches it.
#pragma once

#include <cstdint>
#include <string>

namespace cryo::progress {

// One per action. The destructor (or stop()) ends the reporter and erases its line, so an
// error message printed after it starts on a clean line.
class Reporter {
 public:
  explicit Reporter(const std::string& action);
  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;
  ~Reporter();
  void stop();
};

// Whether a reporter runs: work done only for the display (estimates) is skipped without.
bool active();
// What the action does now ("freezing", "memory of task 42", ...).
void phase(const std::string& name);
// Pages the action expects to move; `delta` may be negative to correct an estimate.
void add_total(int64_t delta);
// Pages moved.
void add_done(uint64_t pages);

// Erases the progress line while another writer uses stderr (log messages); the reporter
// draws it again at its next tick.
class Hold {
 public:
  Hold();
  Hold(const Hold&) = delete;
  Hold& operator=(const Hold&) = delete;
  ~Hold();

 private:
  bool held_ = false;
};

// The line as the reporter draws it (for tests): `elapsed` in seconds, `rate` in MiB/s.
std::string format_line(const std::string& action, const std::string& phase, uint64_t done,
                        uint64_t total, double rate, double elapsed, unsigned width);

}  // namespace cryo::progress
