// A point in time after which a wait gives up: every wait of cryo has one.
#pragma once

#include <algorithm>
#include <chrono>

namespace cryo {

class Deadline {
 public:
  using clock = std::chrono::steady_clock;
  explicit Deadline(clock::duration within) : at_(clock::now() + within), within_(within) {}
  bool expired() const { return clock::now() >= at_; }
  clock::duration remaining() const { return std::max(at_ - clock::now(), clock::duration{}); }
  // The allowed time, in whole seconds, for messages.
  long long seconds() const {
    return std::chrono::duration_cast<std::chrono::seconds>(within_).count();
  }

 private:
  clock::time_point at_;
  clock::duration within_;
};

}  // namespace cryo
