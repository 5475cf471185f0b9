// Many syscalls in one stop of a task, for restores: a loop of machine code in an executable
// area of the task runs a table of calls and ends at an int3, so a call costs about a
// microsecond instead of two ptrace stops. The int3 leaves a SIGTRAP that would kill the task
// if cryo died before taking it: fine for a task being restored (PTRACE_O_EXITKILL kills it
// then anyway), never for a task being dumped.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "infect/remote_task.h"

namespace cryo {

class RemoteBatch {
 public:
  // Maps the batch's area (`len` bytes, at `hint`, which must be free) in `rt`'s task.
  RemoteBatch(RemoteTask& rt, uint64_t hint, size_t len);
  ~RemoteBatch();
  RemoteBatch(const RemoteBatch&) = delete;
  RemoteBatch& operator=(const RemoteBatch&) = delete;

  // Queues syscall `nr`; it runs at the latest at the next flush(). It must succeed, and
  // return `expect` when that is given; else flush() throws naming `what`.
  void add(long nr, std::initializer_list<uint64_t> args, std::string what,
           std::optional<uint64_t> expect = std::nullopt);
  // Runs every queued call, in order; stops at the first that fails and throws.
  void flush();
  // Unmaps the area (after a flush); the destructor does it too, without throwing.
  void close();
  uint64_t start() const { return area_; }
  size_t size() const { return len_; }

 private:
  struct Call {
    uint64_t nr, args[6], result;
  };
  static_assert(sizeof(Call) == 64, "the code walks the table in steps of 64 bytes");
  RemoteTask& rt_;
  uint64_t area_ = 0;
  size_t len_ = 0;
  size_t capacity_ = 0;
  std::vector<Call> calls_;
  std::vector<std::string> what_;
  std::vector<std::optional<uint64_t>> expect_;
};

}  // namespace cryo
