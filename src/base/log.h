// CRIU-like leveled logging: -v0 (nothing) .. -v4 (debug); lines carry a timestamp
// relative to the start of the run and, where known, the task they concern.
#pragma once

#include <string>

#include <fmt/format.h>

namespace cryo::log {

enum Level { kError = 1, kWarn = 2, kInfo = 3, kDebug = 4 };

// Opens the log destination: a path ("-" or empty means stderr) and the level.
void init(const std::string& path, int level);
int level();
void write(Level lvl, const std::string& line);
// Messages that must reach the user whatever the log file: written to stderr too.
void user(Level lvl, const std::string& line);

template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... a) {
  user(kError, fmt::format(f, std::forward<Args>(a)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... a) {
  if (level() >= kWarn) write(kWarn, fmt::format(f, std::forward<Args>(a)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... a) {
  if (level() >= kInfo) write(kInfo, fmt::format(f, std::forward<Args>(a)...));
}
template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... a) {
  if (level() >= kDebug) write(kDebug, fmt::format(f, std::forward<Args>(a)...));
}

}  // namespace cryo::log
