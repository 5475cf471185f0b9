#include "infect/probe_batch.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include <array>

#include "base/deadline.h"
#include "base/error.h"
#include "base/fault.h"
#include "base/log.h"
#include "infect/scratch_arena.h"
#include "infect/wait_status.h"
#include "kernel/syscalls.h"

namespace cryo {
namespace {

// x86-64; the table's address in rbx, entries {nr, 6 args, result} of 64 bytes; the end mark
// has nr -1 and the signal to send as its first argument:
//   loop: mov rax,[rbx]; cmp rax,-1; je done
//         mov rdi,[rbx+8]; mov rsi,[rbx+16]; mov rdx,[rbx+24]
//         mov r10,[rbx+32]; mov r8,[rbx+40]; mov r9,[rbx+48]
//         syscall; mov [rbx+56],rax; add rbx,64; jmp loop
//   done: mov eax,39 (getpid); syscall; mov r12,rax
//         mov eax,186 (gettid); syscall; mov rsi,rax; mov rdi,r12
//         mov rdx,[rbx+8]; mov eax,234 (tgkill); syscall
//   stop: ret                     (into the recovery frame: rt_sigreturn)
// getpid and gettid, not cryo's numbers: the task may see other PIDs (its pid namespace).
constexpr unsigned char kCode[] = {
    0x48, 0x8b, 0x03, 0x48, 0x83, 0xf8, 0xff, 0x74, 0x24, 0x48, 0x8b, 0x7b, 0x08, 0x48, 0x8b, 0x73,
    0x10, 0x48, 0x8b, 0x53, 0x18, 0x4c, 0x8b, 0x53, 0x20, 0x4c, 0x8b, 0x43, 0x28, 0x4c, 0x8b, 0x4b,
    0x30, 0x0f, 0x05, 0x48, 0x89, 0x43, 0x38, 0x48, 0x83, 0xc3, 0x40, 0xeb, 0xd3, 0xb8, 0x27, 0x00,
    0x00, 0x00, 0x0f, 0x05, 0x49, 0x89, 0xc4, 0xb8, 0xba, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x48, 0x89,
    0xc6, 0x4c, 0x89, 0xe7, 0x48, 0x8b, 0x53, 0x08, 0xb8, 0xea, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xc3};
constexpr uint64_t kStop = 0x4f;  // the "ret": where the signal's stop finds the thread

struct Entry {
  uint64_t nr, args[6], result;
};
static_assert(sizeof(Entry) == 64, "the code walks the table in steps of 64 bytes");

// The area: code, table, outputs, then the spare page.
constexpr uint64_t kTable = 128;
constexpr size_t kMaxEntries = 96;  // the end mark included
constexpr uint64_t kOuts = kTable + kMaxEntries * sizeof(Entry);
constexpr uint64_t kSpare = 3 * kernel::kPageSize;
constexpr size_t kAreaLen = kSpare + kernel::kPageSize;
static_assert(sizeof kCode <= kTable && kOuts < kSpare);

constexpr uint64_t kTrapFlag = 0x100;
constexpr uint64_t kUserTop = 0x7ffffffff000;  // the top of a 4-level x86_64 address space

// A free range of `len` bytes in a task, a page away from its neighbours and never right
// below a stack (its guard gap).
std::optional<uint64_t> free_range(const std::vector<proc::Vma>& maps, size_t len) {
  const uint64_t page = kernel::kPageSize;
  for (size_t i = 0; i + 1 < maps.size(); i++) {
    if (maps[i].end < (1ULL << 20) || maps[i + 1].path == "[stack]") continue;
    const uint64_t lo = maps[i].end + page;
    const uint64_t hi = std::min(maps[i + 1].start, kUserTop) - page;
    if (hi > lo && hi - lo >= len) return hi - len;
  }
  return std::nullopt;
}

constexpr uint64_t bit(int sig) {
  return 1ULL << (sig - 1);
}

void set_mask(pid_t tid, uint64_t mask) {
  if (ptrace(PTRACE_SETSIGMASK, tid, sizeof mask, &mask) < 0)
    fail_sys("cannot set the signal mask of task {}", tid);
}

}  // namespace

int ProbeBatch::pick_signal(const proc::Status& st, uint64_t own_mask) {
  // Ignored by default, so that an uncaught one is dropped by the kernel. Not pending: cryo
  // takes every one that comes during the batch. Not blocked by the thread: a thread that
  // blocks it may be waiting for it with sigwaitinfo.
  for (int sig : {SIGURG, SIGWINCH, SIGCHLD}) {
    const uint64_t b = bit(sig);
    if (!((st.sig_cgt | st.sig_pnd | st.shd_pnd | own_mask) & b)) return sig;
  }
  return 0;
}

ProbeBatch::ProbeBatch(ThreadProbe& probe, const proc::Status& st, uint64_t own_mask, Mode mode)
    : probe_(probe) {
  RemoteTask& rt = probe.rt();
  if (mode == Mode::kOneByOne) return;
  const char* why = nullptr;
  if (!probe.protected_by_frame())
    why = "no recovery frame";
  else if (st.seccomp != 0)
    why = "seccomp filters would see the calls were cryo killed";
  else if (!(signal_ = pick_signal(st, own_mask)))
    why = "SIGURG, SIGWINCH and SIGCHLD are all caught, pending or blocked";
  if (why) {
    log::debug("task {}: queries one by one: {}", rt.tid(), why);
    return;
  }
  const std::optional<uint64_t> at = free_range(probe.maps(), kAreaLen);
  if (!at) {
    log::debug("task {}: queries one by one: no free range for them", rt.tid());
    return;
  }
  // The thread's calls "ret" into a chain from now on: a frame that unmaps the area (a
  // munmap from the vDSO's "syscall; ret"), then the probe's own frame. A killed cryo thus
  // leaves no trace at any instant, the mmap's own return included: the range was free.
  arch::Regs r = rt.saved_regs();
  r.rip = rt.gadget();
  r.rax = SYS_munmap;
  r.rdi = *at;
  r.rsi = kAreaLen;
  r.rsp = rt.stack();
  r.orig_rax = static_cast<uint64_t>(-1L);
  r.eflags &= ~kTrapFlag;
  const std::optional<uint64_t> chain = probe.chain_frame(r);
  if (!chain) {
    log::debug("task {}: queries one by one: no room for a second frame", rt.tid());
    return;
  }
  own_stack_ = rt.stack();
  rt.set_stack(*chain);
  // MAP_NORESERVE: not charged to a strict commit limit.
  SyscallResult got =
      rt.syscall(SYS_mmap, *at, kAreaLen, PROT_READ | PROT_WRITE | PROT_EXEC,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
  if (!got.ok() || static_cast<uint64_t>(got.raw()) != *at) {
    log::debug("task {}: queries one by one: no executable mapping for them at {:#x}: {}", rt.tid(),
               *at, got.ok() ? "placed elsewhere" : strerror(got.error()));
    if (got.ok()) rt.syscall(SYS_munmap, got.raw(), kAreaLen);
    rt.set_stack(own_stack_);
    return;
  }
  area_ = *at;
  try {
    rt.write_mem(area_, kCode, sizeof kCode);
  } catch (...) {
    close();
    throw;
  }
}

ProbeBatch::~ProbeBatch() {
  try {
    close();
  } catch (const Error& e) {
    log::warn("{}", e.what());
  }
}

void ProbeBatch::close() {
  if (!area_) return;
  RemoteTask& rt = probe_.rt();
  const uint64_t at = area_;
  area_ = 0;
  rt.check("munmap of the query area", SYS_munmap, at, kAreaLen);
  rt.set_stack(own_stack_);
}

std::optional<uint64_t> ProbeBatch::spare_page() const {
  if (!area_) return std::nullopt;
  return area_ + kSpare;
}

SyscallResult ProbeBatch::result(size_t i) const {
  const Call& c = calls_.at(i);
  if (!c.done) fail("probe batch: call {} has not run", i);
  return SyscallResult(c.result, probe_.rt().tid(), c.nr);
}

void ProbeBatch::run_one(Call& c) {
  RemoteTask& rt = probe_.rt();
  ScratchArena arena(rt);
  RemotePtr<uint8_t> out;
  if (c.out_arg >= 0) {
    out = arena.reserve<uint8_t>(c.out_len);
    c.args[c.out_arg] = out.addr();
  }
  c.result =
      rt.syscall(c.nr, c.args[0], c.args[1], c.args[2], c.args[3], c.args[4], c.args[5]).raw();
  if (c.out_arg >= 0) {
    c.out.resize(c.out_len);
    rt.read_mem(out, c.out.data(), c.out_len);
  }
  c.done = true;
}

void ProbeBatch::run() {
  if (!area_) {
    for (; next_ < calls_.size(); next_++) run_one(calls_[next_]);
    return;
  }
  while (next_ < calls_.size()) {
    size_t to = next_, outs = 0;
    for (; to < calls_.size() && to - next_ < kMaxEntries - 1; to++) {
      const size_t need = (calls_[to].out_len + 15) & ~size_t{15};
      if (kOuts + outs + need > kSpare) break;
      outs += need;
    }
    if (to == next_) fail("probe batch: an output of {} bytes is too large", calls_[to].out_len);
    run_batch(next_, to);
    next_ = to;
  }
}

void ProbeBatch::run_batch(size_t from, size_t to) {
  RemoteTask& rt = probe_.rt();
  const pid_t tid = rt.tid();
  std::vector<Entry> table(to - from + 1);
  std::vector<uint64_t> out_at(to - from);
  uint64_t outs = area_ + kOuts;
  for (size_t i = from; i < to; i++) {
    Call& c = calls_[i];
    Entry& e = table[i - from];
    e.nr = static_cast<uint64_t>(c.nr);
    std::copy(std::begin(c.args), std::end(c.args), e.args);
    if (c.out_arg >= 0) {
      out_at[i - from] = outs;
      e.args[c.out_arg] = outs;
      outs += (c.out_len + 15) & ~size_t{15};
    }
  }
  Entry& end = table.back();
  end.nr = ~0ULL;
  end.args[0] = static_cast<uint64_t>(signal_);
  const uint64_t at = area_ + kTable;
  rt.write_mem(at, table.data(), table.size() * sizeof(Entry));

  arch::Regs r = rt.saved_regs();
  r.rip = area_;
  r.rbx = at;
  r.rsp = rt.stack();
  r.orig_rax = static_cast<uint64_t>(-1L);
  r.eflags &= ~kTrapFlag;
  arch::set_regs(tid, r);
  // Every signal but the batch's stays blocked, as for any call cryo runs in a thread.
  set_mask(tid, ~bit(signal_));
  Deadline deadline(kRemoteSyscallWait);
  int resume_sig = 0;
  for (;;) {
    if (ptrace(PTRACE_CONT, tid, nullptr, resume_sig) < 0)
      fail_sys("cannot resume task {} into its queries", tid);
    if (fault_wanted("kill-in-queries")) ::kill(::getpid(), SIGKILL);  // the thread runs alone
    resume_sig = 0;
    WaitStatus ws = wait_task(tid, deadline);
    if (ws.gone()) fail("task {} {} during {} queries run by cryo", tid, ws.str(), to - from);
    if (ws.event()) continue;
    const int sig = ws.stop_sig();
    if (sig == signal_ && arch::get_regs(tid).rip == area_ + kStop) break;
    if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL)
      fail("task {}: the queries run by cryo fault with signal {}", tid, sigabbrev_np(sig));
    // The batch's signal sent by someone else (the thread ignores it: dropping it changes
    // nothing), or a SIGSTOP, noted and made when cryo is done, as for a single call.
    if (sig == SIGSTOP) rt.note_stop_request();
    log::debug("task {}: discarding signal {} during its queries", tid, sig);
  }
  set_mask(tid, ~0ULL);
  // The table and the outputs right after it, in one read.
  std::string got(outs - at, '\0');
  rt.read_mem(at, got.data(), got.size());
  for (size_t i = from; i < to; i++) {
    Call& c = calls_[i];
    Entry e;
    std::memcpy(&e, got.data() + (i - from) * sizeof(Entry), sizeof e);
    c.result = static_cast<long>(e.result);
    c.done = true;
    if (c.out_arg >= 0) c.out = got.substr(out_at[i - from] - at, c.out_len);
  }
}

}  // namespace cryo
