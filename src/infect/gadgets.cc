#include "infect/gadgets.h"

#include <sys/uio.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "base/error.h"
#include "base/log.h"
#include "proc/proc.h"

namespace cryo {
namespace {

constexpr uint8_t kSyscall[] = {0x0f, 0x05};
constexpr uint8_t kMovEax15Syscall[] = {0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
constexpr uint8_t kMovRax15Syscall[] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
constexpr size_t kMaxScan = 32u << 20;  // of one mapping

bool at(const uint8_t* code, size_t len, size_t i, const uint8_t* pat, size_t n) {
  return i + n <= len && std::memcmp(code + i, pat, n) == 0;
}

// True when the bytes from `i` are register-only instructions (xor reg, reg; nop), then ret.
bool clears_then_returns(const uint8_t* code, size_t len, size_t i) {
  for (int insn = 0; insn < 16 && i < len; insn++) {
    uint8_t b = code[i];
    if (b == 0xc3) return true;
    if (b == 0x90) {
      i += 1;
      continue;
    }
    size_t j = i + ((b & 0xf0) == 0x40 ? 1 : 0);  // REX prefix
    if (j + 1 < len && (code[j] == 0x31 || code[j] == 0x33) && code[j + 1] >= 0xc0) {
      i = j + 2;
      continue;
    }
    return false;
  }
  return false;
}

// Gadget offsets found in one mapping of a file (by device, inode, offset and size), relative
// to the mapping's start, plus one; 0 means absent.
using MapKey = std::tuple<uint32_t, uint32_t, uint64_t, uint64_t, uint64_t>;
std::mutex g_cache_lock;
std::map<MapKey, Gadgets> g_cache;

MapKey key_of(const proc::Vma& v) {
  return {v.dev_major, v.dev_minor, v.inode, v.pgoff, v.size()};
}

Gadgets relative(const Gadgets& g, uint64_t base) {
  Gadgets r;
  r.syscall = g.syscall ? g.syscall - base + 1 : 0;  // +1: an offset of 0 is a real find
  r.syscall_ret = g.syscall_ret ? g.syscall_ret - base + 1 : 0;
  r.sigreturn = g.sigreturn ? g.sigreturn - base + 1 : 0;
  return r;
}

bool read_code(pid_t pid, uint64_t addr, void* buf, size_t len) {
  iovec local{buf, len}, remote{reinterpret_cast<void*>(addr), len};
  return ::process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len);
}

// Checks again that a remembered gadget is what the task has at that address.
bool still_there(pid_t pid, uint64_t addr, bool (*check)(const uint8_t*, size_t)) {
  uint8_t buf[32];
  return read_code(pid, addr, buf, sizeof buf) && check(buf, sizeof buf);
}

bool is_syscall(const uint8_t* c, size_t n) {
  return at(c, n, 0, kSyscall, 2);
}
bool is_syscall_ret(const uint8_t* c, size_t n) {
  return at(c, n, 0, kSyscall, 2) && clears_then_returns(c, n, 2);
}
bool is_sigreturn(const uint8_t* c, size_t n) {
  return at(c, n, 0, kMovEax15Syscall, sizeof kMovEax15Syscall) ||
         at(c, n, 0, kMovRax15Syscall, sizeof kMovRax15Syscall);
}

// Adds what one mapping offers to `g`, from the cache or by reading it.
void take_from(pid_t pid, const proc::Vma& v, Gadgets* g) {
  MapKey key = key_of(v);
  Gadgets rel;
  bool cached = false;
  {
    std::lock_guard lock(g_cache_lock);
    auto it = g_cache.find(key);
    if (it != g_cache.end()) rel = it->second, cached = true;
  }
  // A remembered offset is used only inside this mapping (the same file may be mapped
  // differently elsewhere).
  auto inside = [&](uint64_t off) { return off && off - 1 + 16 <= v.size(); };
  if (cached && (!rel.syscall || inside(rel.syscall)) &&
      (!rel.syscall_ret || inside(rel.syscall_ret)) && (!rel.sigreturn || inside(rel.sigreturn))) {
    Gadgets found;
    if (rel.syscall && still_there(pid, v.start + rel.syscall - 1, is_syscall))
      found.syscall = v.start + rel.syscall - 1;
    if (rel.syscall_ret && still_there(pid, v.start + rel.syscall_ret - 1, is_syscall_ret))
      found.syscall_ret = v.start + rel.syscall_ret - 1;
    if (rel.sigreturn && still_there(pid, v.start + rel.sigreturn - 1, is_sigreturn))
      found.sigreturn = v.start + rel.sigreturn - 1;
    bool complete = (found.syscall || !rel.syscall) && (found.syscall_ret || !rel.syscall_ret) &&
                    (found.sigreturn || !rel.sigreturn);
    if (complete) {
      if (!g->syscall) g->syscall = found.syscall;
      if (!g->syscall_ret) g->syscall_ret = found.syscall_ret;
      if (!g->sigreturn) g->sigreturn = found.sigreturn;
      return;
    }
  }
  size_t len = std::min<uint64_t>(v.size(), kMaxScan);
  std::string buf(len, '\0');
  if (!read_code(pid, v.start, buf.data(), len)) return;
  Gadgets here;
  scan_gadgets(reinterpret_cast<const uint8_t*>(buf.data()), len, v.start, &here);
  {
    std::lock_guard lock(g_cache_lock);
    g_cache[key] = relative(here, v.start);
  }
  if (!g->syscall) g->syscall = here.syscall;
  if (!g->syscall_ret) g->syscall_ret = here.syscall_ret;
  if (!g->sigreturn) g->sigreturn = here.sigreturn;
}

bool complete(const Gadgets& g) {
  return g.syscall && g.can_recover();
}

}  // namespace

void scan_gadgets(const uint8_t* code, size_t len, uint64_t base, Gadgets* g) {
  for (size_t i = 0; i + 1 < len && !complete(*g); i++) {
    if (code[i] == 0x0f && code[i + 1] == 0x05) {
      if (!g->syscall) g->syscall = base + i;
      if (!g->syscall_ret && clears_then_returns(code, len, i + 2)) g->syscall_ret = base + i;
    } else if (!g->sigreturn && (at(code, len, i, kMovEax15Syscall, sizeof kMovEax15Syscall) ||
                                 at(code, len, i, kMovRax15Syscall, sizeof kMovRax15Syscall))) {
      g->sigreturn = base + i;
    }
  }
}

Gadgets find_gadgets(pid_t pid) {
  return find_gadgets(pid, proc::read_maps(pid));
}

Gadgets find_gadgets(pid_t pid, const std::vector<proc::Vma>& vmas) {
  Gadgets g;
  for (const auto& v : vmas)
    if (v.x && v.path == "[vdso]") take_from(pid, v, &g);
  // The C library has the sigreturn every signal handler returns through: look there next.
  for (int pass = 0; pass < 2 && !complete(g); pass++)
    for (const auto& v : vmas) {
      if (complete(g)) break;
      if (!v.x || !v.r || v.path.empty() || v.path[0] != '/') continue;
      bool libc = v.path.find("/libc") != std::string::npos;
      if ((pass == 0) == libc) take_from(pid, v, &g);
    }
  return g;
}

uint64_t find_syscall_gadget(pid_t pid, bool from_vdso) {
  auto vmas = proc::read_maps(pid);
  Gadgets g;
  for (const auto& v : vmas)
    if (from_vdso && v.x && v.path == "[vdso]") take_from(pid, v, &g);
  for (const auto& v : vmas) {
    if (g.syscall) break;
    if (v.x && v.r && v.path != "[vdso]" && v.path != "[vsyscall]") take_from(pid, v, &g);
  }
  if (!g.syscall) fail("task {}: no syscall instruction found in its executable mappings", pid);
  return g.syscall;
}

}  // namespace cryo
