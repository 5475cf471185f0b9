// An address in the memory of a task cryo works on, typed by what lies there (void: bytes).
// cryo never dereferences one: it passes it to remote calls and to RemoteTask::read/write.
// Kept apart from local pointers and plain integers so that neither is passed by mistake.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <fmt/format.h>

namespace cryo {

template <typename T>
class RemotePtr {
 public:
  constexpr RemotePtr() = default;
  constexpr explicit RemotePtr(uint64_t addr) : addr_(addr) {}
  // A typed address is also an address of bytes.
  template <typename U>
  requires(std::is_void_v<T> && !std::is_void_v<U>) constexpr RemotePtr(RemotePtr<U> p)
      : addr_(p.addr()) {}

  constexpr uint64_t addr() const { return addr_; }
  constexpr explicit operator bool() const { return addr_ != 0; }
  template <typename U>
  constexpr RemotePtr<U> cast() const {
    return RemotePtr<U>(addr_);
  }
  // As a pointer field of a structure the task reads (an iovec, a msghdr); never to be
  // dereferenced by cryo.
  T* as_field() const { return reinterpret_cast<T*>(addr_); }

  // Arithmetic counts elements of T (bytes for void), as for local pointers.
  constexpr RemotePtr operator+(int64_t n) const { return RemotePtr(addr_ + n * step()); }
  constexpr RemotePtr operator-(int64_t n) const { return RemotePtr(addr_ - n * step()); }
  constexpr RemotePtr& operator+=(int64_t n) { return *this = *this + n; }
  constexpr RemotePtr& operator-=(int64_t n) { return *this = *this - n; }
  constexpr int64_t operator-(RemotePtr o) const {
    return static_cast<int64_t>(addr_ - o.addr_) / static_cast<int64_t>(step());
  }
  friend constexpr auto operator<=>(RemotePtr, RemotePtr) = default;

 private:
  static constexpr uint64_t step() {
    if constexpr (std::is_void_v<T>)
      return 1;
    else
      return sizeof(T);
  }
  uint64_t addr_ = 0;
};

using RemoteAddr = RemotePtr<void>;

template <typename T>
inline constexpr bool is_remote_ptr = false;
template <typename T>
inline constexpr bool is_remote_ptr<RemotePtr<T>> = true;

}  // namespace cryo

// Formats as hex with 0x, like "{:#x}" of the address.
template <typename T>
struct fmt::formatter<cryo::RemotePtr<T>> : fmt::formatter<std::string_view> {
  template <typename Ctx>
  auto format(cryo::RemotePtr<T> p, Ctx& ctx) const {
    char buf[24];
    auto end = fmt::format_to_n(buf, sizeof buf, "{:#x}", p.addr()).out;
    return fmt::formatter<std::string_view>::format(std::string_view(buf, end - buf), ctx);
  }
};
