#include "infect/probe.h"

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include <cstring>

#include "arch/x86_64/sigframe.h"
#include "base/error.h"
#include "base/log.h"
#include "kernel/syscalls.h"
#include "proc/proc.h"

namespace cryo {
namespace {

constexpr uint64_t kRedZone = 128;  // below the stack pointer, still the thread's (x86_64 ABI)
constexpr uint64_t kTrapFlag = 0x100;

bool has_shadow_stack(pid_t tid) {
  // Only where the CPU and kernel offer user shadow stacks: else no status to read per thread.
  static const bool offered = [] {
    auto cpuinfo = proc::try_read_file("/proc/cpuinfo");
    return !cpuinfo || cpuinfo->find(" user_shstk") != std::string::npos;
  }();
  if (!offered) return false;
  auto text = proc::try_read_file(fmt::format("/proc/{}/status", tid));
  if (!text) return false;
  size_t p = text->find("x86_Thread_features:");
  if (p == std::string::npos) return false;
  size_t e = text->find('\n', p);
  return text->substr(p, e == std::string::npos ? e : e - p).find("shstk") != std::string::npos;
}

// True when [lo, hi) lies in a thread's own stack: the main stack, or an anonymous mapping
// right above a guard page (how the C library makes thread stacks). Elsewhere (a green
// thread's stack in the heap, a sigaltstack in a buffer) the bytes below the stack pointer
// may belong to someone else, and a killed cryo could not put them back.
bool in_thread_stack(const std::vector<proc::Vma>& vmas, uint64_t lo, uint64_t hi) {
  for (size_t i = 0; i < vmas.size(); i++) {
    const proc::Vma& v = vmas[i];
    if (v.start > lo || hi > v.end) continue;
    if (!v.r || !v.w || v.shared) return false;
    if (v.path == "[stack]") return true;
    if (!v.path.empty() || i == 0) return false;
    const proc::Vma& below = vmas[i - 1];
    return below.end == v.start && !below.r && !below.w && !below.x;
  }
  return false;
}

void set_mask(pid_t tid, uint64_t mask) {
  if (ptrace(PTRACE_SETSIGMASK, tid, sizeof mask, &mask) < 0)
    fail_sys("cannot set the signal mask of task {}", tid);
}

}  // namespace

ThreadProbe::ThreadProbe(FrozenThread& th, const Gadgets& gadgets, uint64_t sigmask,
                         const std::vector<proc::Vma>* maps)
    : th_(th),
      maps_(maps),
      sigreturn_(gadgets.sigreturn),
      rt_(th.tid, gadgets.syscall),
      sigmask_(sigmask) {
  rt_.set_saved_regs(th.regs);
  try {
    framed_ = place_frame(gadgets, sigmask);
    if (framed_) {
      // Registers that lead back through the frame, before the mask changes: parked on the
      // rt_sigreturn itself (as if the gadget's "ret" had run), so that a thread resumed now
      // runs no other syscall, which its seccomp filters could refuse once cryo is gone.
      arch::Regs r = th.regs;
      r.rip = gadgets.sigreturn;
      r.rsp = (saved_at_ + kScratch + sizeof(uint64_t)).addr();
      r.orig_rax = static_cast<uint64_t>(-1L);
      r.eflags &= ~kTrapFlag;
      arch::set_regs(th.tid, r);
    }
    // No signal of the thread's own may be taken behind its back while cryo works in it.
    set_mask(th.tid, ~0ULL);
    masked_ = true;
    if (!framed_) rt_.map_scratch(kernel::kPageSize);
  } catch (...) {
    end();
    throw;
  }
}

ThreadProbe::~ThreadProbe() {
  end();
}

const std::vector<proc::Vma>& ThreadProbe::maps() {
  if (!maps_) {
    own_maps_ = proc::read_maps(th_.tid);
    maps_ = &own_maps_;
  }
  return *maps_;
}

bool ThreadProbe::place_frame(const Gadgets& gadgets, uint64_t sigmask) {
  const pid_t tid = th_.tid;
  if (!gadgets.can_recover()) {
    log::warn(
        "task {}: no 'syscall; ret' and rt_sigreturn code found in it: if cryo is killed while "
        "it works in this task, the task may crash",
        tid);
    return false;
  }
  if (has_shadow_stack(tid)) {
    log::warn(
        "task {} uses a shadow stack: if cryo is killed while it works in this task, the "
        "task may crash",
        tid);
    return false;
  }
  const uint64_t top = th_.regs.rsp - kRedZone;
  xstate_ = arch::get_xstate(tid);
  arch::Sigframe f = arch::build_sigframe(top, th_.regs, xstate_, sigmask, gadgets.sigreturn);
  const uint64_t lo = f.addr - kScratch;
  if (f.addr < kScratch || top > th_.regs.rsp || !in_thread_stack(maps(), lo, top)) {
    log::warn(
        "task {}: its stack pointer {:#x} is not in a thread stack with room for a recovery "
        "frame: if cryo is killed while it works in this task, the task may crash",
        tid, th_.regs.rsp);
    return false;
  }
  saved_bytes_.resize(top - lo);
  saved_at_ = RemoteAddr(lo);
  rt_.read_mem(saved_at_, saved_bytes_.data(), saved_bytes_.size());
  rt_.write_mem(RemoteAddr(f.addr), f.bytes.data(), f.bytes.size());
  // The frame starts right above the scratch area: calls run with it as their stack.
  rt_.set_stack(f.addr);
  rt_.set_gadget(gadgets.syscall_ret);
  rt_.adopt_scratch(saved_at_.addr(), kScratch);
  log::debug("task {}: recovery frame at {:#x}", tid, f.addr);
  return true;
}

std::optional<uint64_t> ThreadProbe::chain_frame(const arch::Regs& regs) {
  if (!framed_) return std::nullopt;
  const uint64_t top = saved_at_.addr();
  arch::Sigframe f = arch::build_sigframe(top, regs, xstate_, ~0ULL, sigreturn_);
  if (f.addr > top || !in_thread_stack(maps(), f.addr, top)) return std::nullopt;
  // What the frame covers is put back at the end, with the rest.
  std::string below(top - f.addr, '\0');
  rt_.read_mem(RemoteAddr(f.addr), below.data(), below.size());
  rt_.write_mem(RemoteAddr(f.addr), f.bytes.data(), f.bytes.size());
  saved_bytes_.insert(0, below);
  saved_at_ = RemoteAddr(f.addr);
  return f.addr;
}

void ThreadProbe::end() {
  const pid_t tid = th_.tid;
  if (rt_.stop_requested()) th_.stop_requested = true;
  // Each step on its own: one that fails must not keep the others from putting things back.
  auto step = [tid](auto&& what) {
    try {
      what();
    } catch (const std::exception& e) {
      log::warn("task {}: {}", tid, e.what());
    }
  };
  if (masked_) step([&] { set_mask(tid, sigmask_); });
  masked_ = false;
  if (!framed_) step([&] { rt_.unmap_scratch(); });
  // Back to an ordinary ptrace stop, with the thread's own registers: interrupt first, so
  // that leaving a syscall stop passes through signal handling, where the kernel restarts
  // a syscall the thread was in; a killed cryo would leave the thread right there.
  step([&] {
    if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) < 0)
      fail_sys("cannot interrupt task {}", tid);
    arch::set_regs(tid, th_.regs);
    int sig = 0;
    for (int round = 0;; round++) {
      if (ptrace(PTRACE_CONT, tid, nullptr, sig) < 0) fail_sys("cannot resume task {}", tid);
      WaitStatus ws = wait_task(tid);
      if (ws.gone()) fail("task {} {} while cryo put it back", tid, ws.str());
      if (ws.event() == PTRACE_EVENT_STOP) break;
      // The interrupt is taken before any signal; should one come first all the same, it is
      // delivered as it would have been, and the thread stops again.
      sig = ws.event() ? 0 : ws.stop_sig();
      if (round > 16) fail("task {} does not come back to a stop", tid);
      if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) < 0)
        fail_sys("cannot interrupt task {}", tid);
    }
  });
  if (framed_ && !saved_bytes_.empty())
    step([&] { rt_.write_mem(saved_at_, saved_bytes_.data(), saved_bytes_.size()); });
  saved_bytes_.clear();
}

}  // namespace cryo
