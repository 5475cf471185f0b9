// Space for the arguments and results of remote calls, in the scratch area of a task
// (RemoteTask::map_scratch, or the room a ThreadProbe keeps below its frame). An arena hands
// out space front to back, aligned for its type, and gives it all back when it ends; arenas
// on one task nest like a stack, so a helper can open its own while its caller's is live.
//
//   ScratchArena arena(rt);
//   auto st = arena.reserve<struct stat>();
//   rt.check("fstatat", SYS_newfstatat, AT_FDCWD, arena.put_str(path), st, 0);
//   struct stat got = rt.read(st);
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <type_traits>

#include "infect/remote_ptr.h"
#include "infect/remote_task.h"

namespace cryo {

class ScratchArena {
 public:
  explicit ScratchArena(RemoteTask& rt);
  ~ScratchArena();
  ScratchArena(const ScratchArena&) = delete;
  ScratchArena& operator=(const ScratchArena&) = delete;

  // A copy of `v` in the task.
  template <typename T>
  RemotePtr<T> put(const T& v) {
    return put_array(std::span<const T>(&v, 1));
  }
  // A copy of the elements of `v`, one after the other; the address of the first.
  template <typename T>
  RemotePtr<T> put_array(std::span<const T> v) {
    static_assert(std::is_trivially_copyable_v<T>);
    RemotePtr<T> at = take(v.size(), sizeof(T), alignof(T)).template cast<T>();
    if (!v.empty()) rt_.write_mem(at, v.data(), v.size_bytes());
    return at;
  }
  // `s` with a terminating NUL, as a path or name argument.
  RemotePtr<char> put_str(std::string_view s);
  // Room for `n` T, not written: for out-parameters, read back with RemoteTask::read.
  template <typename T>
  RemotePtr<T> reserve(size_t n = 1) {
    static_assert(std::is_trivially_copyable_v<T>);
    return take(n, sizeof(T), alignof(T)).template cast<T>();
  }
  // Bytes still free.
  size_t left() const;

 private:
  // Room for `n` elements of `size` bytes.
  RemoteAddr take(size_t n, size_t size, size_t align);
  RemoteTask& rt_;
  ScratchArena* outer_;  // the task's arena before this one, current again at its end
  size_t start_;         // where this arena began, given back at its end
};

// The common query: runs `nr` with `args` then a pointer to a T, checked as
// RemoteTask::check, and returns the T the call wrote there.
template <typename T, typename... A>
T check_out(RemoteTask& rt, std::string_view what, long nr, A... args) {
  ScratchArena arena(rt);
  RemotePtr<T> out = arena.reserve<T>();
  rt.check(what, nr, args..., out);
  return rt.read(out);
}

}  // namespace cryo
