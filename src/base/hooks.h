// CRIU's notification points of a dump and a restore ("action scripts"): an RPC client's
// notify callbacks and --action-script scripts are both told of them, in CRIU's order.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace cryo::hooks {

// CRIU's action names, as the client or script sees them.
inline constexpr const char kPreDump[] = "pre-dump";
inline constexpr const char kPostDump[] = "post-dump";
inline constexpr const char kPreRestore[] = "pre-restore";
inline constexpr const char kSetupNamespaces[] = "setup-namespaces";
inline constexpr const char kPostSetupNamespaces[] = "post-setup-namespaces";
inline constexpr const char kPostRestore[] = "post-restore";
inline constexpr const char kPreResume[] = "pre-resume";
inline constexpr const char kPostResume[] = "post-resume";

// One listener: told the action and the root task's PID. It throws Error to abort the dump or
// restore (the dumped tree then runs on; a half-restored one is removed).
using Listener = std::function<void(const std::string& action, pid_t root)>;

class Hooks {
 public:
  void add(Listener l) { listeners_.push_back(std::move(l)); }
  bool empty() const { return listeners_.empty(); }
  void run(const std::string& action, pid_t root) const {
    for (const auto& l : listeners_) l(action, root);
  }

 private:
  std::vector<Listener> listeners_;
};

// The dump's and restore's call: nothing when no one listens.
inline void run(const Hooks* h, const char* action, pid_t root) {
  if (h) h->run(action, root);
}

}  // namespace cryo::hooks
