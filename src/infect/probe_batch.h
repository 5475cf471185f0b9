// Many queries asked of one thread under a ThreadProbe (infect/probe.h) in one ptrace stop,
// instead of two stops per call. A loop of machine code, in a small executable area cryo maps
// in the task, runs a table of syscalls; then the thread sends itself a signal, and the
// stop for that signal hands it back to cryo.
//
// Made for dumps, where the thread must survive cryo's death at any instant:
//  - the calls are queries that change nothing in the task;
//  - the code ends with a "ret" into the probe's recovery frame, so a thread resumed by the
//    kernel after cryo died finishes the table and puts itself back;
//  - the signal is one that the process neither catches nor has pending, and that the thread
//    does not block (SIGURG, SIGWINCH or SIGCHLD): untraced, the kernel drops it.
// Where that cannot be arranged (no recovery frame, seccomp filters that would see the calls
// once cryo is gone, no such signal, a task that refuses an executable mapping), the calls run
// one by one, with the same results.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "infect/probe.h"
#include "infect/remote_task.h"
#include "infect/syscall_result.h"
#include "proc/proc.h"

namespace cryo {

class ProbeBatch {
 public:
  // kOneByOne: no batch, for a few calls (mapping room for a batch costs two calls).
  enum class Mode { kBatch, kOneByOne };
  // `st` is the thread's /proc status and `own_mask` its own signal mask (the probe blocks
  // every signal meanwhile).
  ProbeBatch(ThreadProbe& probe, const proc::Status& st, uint64_t own_mask,
             Mode mode = Mode::kBatch);
  ~ProbeBatch();
  ProbeBatch(const ProbeBatch&) = delete;
  ProbeBatch& operator=(const ProbeBatch&) = delete;

  // An argument of add(): room for `len` bytes the call writes, read back with out().
  struct Out {
    size_t len;
  };
  template <typename T>
  static constexpr Out out_of() {
    static_assert(std::is_trivially_copyable_v<T>);
    return Out{sizeof(T)};
  }

  // Queues syscall `nr`; its arguments are integers, enums, RemotePtrs (see syscall_arg) and
  // at most one Out. Returns the call's index for result() and out().
  template <typename... A>
  size_t add(long nr, A... args) {
    static_assert(sizeof...(A) <= 6, "a syscall takes at most 6 arguments");
    Call c;
    c.nr = nr;
    size_t i = 0;
    (put_arg(c, i++, args), ...);
    calls_.push_back(std::move(c));
    return calls_.size() - 1;
  }
  // Runs every call queued since the last run.
  void run();
  SyscallResult result(size_t i) const;
  template <typename T>
  T out(size_t i) const {
    static_assert(std::is_trivially_copyable_v<T>);
    const std::string& b = calls_.at(i).out;
    if (b.size() != sizeof(T)) fail("probe batch: call {} has no output of {} bytes", i, sizeof(T));
    T v;
    std::memcpy(&v, b.data(), sizeof v);
    return v;
  }

  // A page of the batch's mapping that nothing touches: a fresh page of the task, for
  // questions only a new mapping answers (mlockall's MCL_FUTURE). None when calls run one by
  // one.
  std::optional<uint64_t> spare_page() const;
  // True when the calls run in one stop (the log says why not otherwise).
  bool batched() const { return area_ != 0; }
  // Unmaps the area; the destructor does it too, without throwing.
  void close();

 private:
  struct Call {
    long nr = 0;
    uint64_t args[6] = {};
    int out_arg = -1;  // which argument is the Out, if any
    size_t out_len = 0;
    long result = 0;
    bool done = false;
    std::string out;
  };
  template <typename T>
  void put_arg(Call& c, size_t i, T v) {
    if constexpr (std::is_same_v<T, Out>) {
      c.out_arg = static_cast<int>(i);
      c.out_len = v.len;
    } else {
      c.args[i] = syscall_arg(v);
    }
  }
  // Picks the signal that ends a batch; 0 when none is safe.
  static int pick_signal(const proc::Status& st, uint64_t own_mask);
  void run_one(Call& c);
  // Runs calls [from, to) in one stop.
  void run_batch(size_t from, size_t to);

  ThreadProbe& probe_;
  uint64_t area_ = 0;
  uint64_t own_stack_ = 0;  // the probe's call stack, before the chain
  int signal_ = 0;
  std::vector<Call> calls_;
  size_t next_ = 0;  // the first call not run yet
};

}  // namespace cryo
