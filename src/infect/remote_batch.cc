#include "infect/remote_batch.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include <cstring>

#include "base/error.h"
#include "base/log.h"

namespace cryo {
namespace {

// x86-64, table address in rbx, entries {nr, 6 args, result}, nr -1 ends the table:
//   loop: mov rax,[rbx]; cmp rax,-1; je done
//         mov rdi,[rbx+8]; mov rsi,[rbx+16]; mov rdx,[rbx+24]
//         mov r10,[rbx+32]; mov r8,[rbx+40]; mov r9,[rbx+48]
//         syscall; mov [rbx+56],rax
//         cmp rax,-4095; jae done        (an error ends the batch there)
//         add rbx,64; jmp loop
//   done: int3
constexpr unsigned char kCode[] = {0x48, 0x8b, 0x03, 0x48, 0x83, 0xf8, 0xff, 0x74, 0x2c, 0x48, 0x8b,
                                   0x7b, 0x08, 0x48, 0x8b, 0x73, 0x10, 0x48, 0x8b, 0x53, 0x18, 0x4c,
                                   0x8b, 0x53, 0x20, 0x4c, 0x8b, 0x43, 0x28, 0x4c, 0x8b, 0x4b, 0x30,
                                   0x0f, 0x05, 0x48, 0x89, 0x43, 0x38, 0x48, 0x3d, 0x01, 0xf0, 0xff,
                                   0xff, 0x73, 0x06, 0x48, 0x83, 0xc3, 0x40, 0xeb, 0xcb, 0xcc};
constexpr uint64_t kTable = 64;  // the table follows the code

bool failed(uint64_t r) {
  return r >= static_cast<uint64_t>(-4095L);
}

}  // namespace

RemoteBatch::RemoteBatch(RemoteTask& rt, uint64_t hint, size_t len) : rt_(rt) {
  area_ =
      rt.check("mmap of a batch area", SYS_mmap,
               {hint, len, PROT_READ | PROT_WRITE | PROT_EXEC,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, static_cast<uint64_t>(-1L), 0});
  if (area_ != hint) fail("task {}: batch area not placed at {:#x}", rt.tid(), hint);
  len_ = len;
  rt.write_mem(area_, kCode, sizeof kCode);
  capacity_ = (len - kTable) / sizeof(Call) - 1;  // room for the end mark
}

RemoteBatch::~RemoteBatch() {
  if (!area_) return;
  try {
    rt_.syscall(SYS_munmap, {area_, len_});
  } catch (const Error& e) {
    log::debug("{}", e.what());  // a restore failing already: its tasks are killed
  }
}

void RemoteBatch::close() {
  if (!area_) return;
  flush();
  rt_.check("munmap of the batch area", SYS_munmap, {area_, len_});
  area_ = 0;
}

void RemoteBatch::add(long nr, std::initializer_list<uint64_t> args, std::string what,
                      std::optional<uint64_t> expect) {
  if (calls_.size() == capacity_) flush();
  Call c{};
  c.nr = static_cast<uint64_t>(nr);
  size_t i = 0;
  for (uint64_t a : args) c.args[i++] = a;
  calls_.push_back(c);
  what_.push_back(std::move(what));
  expect_.push_back(expect);
}

void RemoteBatch::flush() {
  if (calls_.empty()) return;
  const pid_t tid = rt_.tid();
  Call end{};
  end.nr = ~0ULL;
  calls_.push_back(end);
  const uint64_t table = area_ + kTable;
  rt_.write_mem(table, calls_.data(), calls_.size() * sizeof(Call));
  calls_.pop_back();

  arch::Regs r = rt_.saved_regs();
  r.rip = area_;
  r.rbx = table;
  r.orig_rax = static_cast<uint64_t>(-1L);
  r.eflags &= ~0x100ULL;
  arch::set_regs(tid, r);
  Deadline deadline(kRemoteSyscallWait);
  for (;;) {
    if (ptrace(PTRACE_CONT, tid, nullptr, 0) < 0)
      fail_sys("cannot resume task {} into a batch", tid);
    WaitStatus ws = wait_task(tid, deadline);
    if (ws.gone()) fail("task {} {} during a batch of {} syscalls", tid, ws.str(), calls_.size());
    if (ws.event()) continue;
    int sig = ws.stop_sig();
    if (sig == SIGTRAP) break;
    if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL)
      fail("task {}: a batch of syscalls run by cryo faults with signal {}", tid,
           sigabbrev_np(sig));
    // An artifact of the restore (the task's own signals come later): dropped.
    log::debug("task {}: discarding signal {} during a batch", tid, sig);
  }
  arch::Regs after = arch::get_regs(tid);
  if (after.rip != area_ + sizeof kCode)
    fail("task {}: a batch of syscalls stopped at {:#x}, not at its end", tid, after.rip);
  size_t done = (after.rbx - table) / sizeof(Call);  // the last one run, or the end mark
  std::vector<Call> out(std::min(done + 1, calls_.size()));
  rt_.read_mem(table, out.data(), out.size() * sizeof(Call));
  for (size_t i = 0; i < out.size(); i++) {
    uint64_t res = out[i].result;
    if (failed(res))
      fail_errno(static_cast<int>(-static_cast<int64_t>(res)), "task {}: {} failed", tid, what_[i]);
    if (expect_[i] && res != *expect_[i])
      fail("task {}: {} returned {:#x}, not {:#x}", tid, what_[i], res, *expect_[i]);
  }
  if (done != calls_.size())
    fail("task {}: a batch of syscalls ended after {} of {}", tid, done, calls_.size());
  calls_.clear();
  what_.clear();
  expect_.clear();
}

}  // namespace cryo
