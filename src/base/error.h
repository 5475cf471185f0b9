// One exception type for every failure, carrying what failed and why.
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace cryo {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Throws Error with a formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

// Throws Error with a formatted message followed by ": <strerror(err)>".
template <typename... Args>
[[noreturn]] void fail_errno(int err, fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...) + ": " + std::strerror(err));
}

// Same, with the current errno.
template <typename... Args>
[[noreturn]] void fail_sys(fmt::format_string<Args...> f, Args&&... args) {
  int err = errno;
  fail_errno(err, f, std::forward<Args>(args)...);
}

}  // namespace cryo
