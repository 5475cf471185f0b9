// What a syscall run inside a task returned: a value, or an errno. Knows the task, so that
// a failure becomes one Error naming the task, the call and the errno text.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <type_traits>
#include <utility>

#include "base/error.h"
#include "infect/remote_ptr.h"

namespace cryo {

class SyscallResult {
 public:
  SyscallResult(long raw, pid_t tid, long nr) : raw_(raw), tid_(tid), nr_(nr) {}

  // The kernel's own return: the value, or -errno.
  long raw() const { return raw_; }
  // Errors are -4095..-1; anything else (an address above 2^63 included) is a value.
  bool ok() const { return raw_ >= 0 || raw_ < -4095; }
  // The errno of a failed call, 0 after success.
  int error() const { return ok() ? 0 : static_cast<int>(-raw_); }

  // The value as an R (an integer type or a RemotePtr); throws when the call failed or the
  // value does not fit.
  template <typename R = long>
  R value() const {
    if (!ok()) fail_errno(error(), "task {}: syscall {} failed", tid_, nr_);
    return convert<R>();
  }
  // The value, or `fallback` when the call failed.
  template <typename R>
  R value_or(R fallback) const {
    return ok() ? convert<R>() : fallback;
  }
  // The value, or an Error "task T: <message>: <errno text>" when the call failed.
  template <typename R = long, typename... A>
  R or_fail(fmt::format_string<A...> f, A&&... args) const {
    if (!ok()) fail_errno(error(), "task {}: {}", tid_, fmt::format(f, std::forward<A>(args)...));
    return convert<R>();
  }

 private:
  template <typename R>
  R convert() const {
    if constexpr (is_remote_ptr<R>) {
      return R(static_cast<uint64_t>(raw_));
    } else {
      static_assert(std::is_integral_v<R> && !std::is_same_v<R, bool>,
                    "a syscall returns an integer or a RemotePtr");
      if (!std::in_range<R>(raw_))
        fail("task {}: syscall {} returned {}, out of the range expected", tid_, nr_, raw_);
      return static_cast<R>(raw_);
    }
  }
  long raw_;
  pid_t tid_;
  long nr_;
};

}  // namespace cryo
