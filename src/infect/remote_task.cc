#include "infect/remote_task.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include <cstring>

#include "base/error.h"
#include "base/log.h"
#include "proc/proc.h"

namespace cryo {

std::string WaitStatus::str() const {
  if (exited()) return fmt::format("exited with {}", exit_code());
  if (killed()) return fmt::format("killed by signal {}", term_sig());
  if (stopped())
    return event() ? fmt::format("stopped by ptrace event {}", event())
                   : fmt::format("stopped by signal {}", stop_sig());
  return fmt::format("status {:#x}", raw_);
}

WaitStatus wait_task(pid_t tid) {
  int st;
  for (;;) {
    pid_t r = ::waitpid(tid, &st, __WALL);
    if (r == tid) return WaitStatus(st);
    if (r < 0 && errno == EINTR) continue;
    fail_sys("cannot wait for task {}", tid);
  }
}

RemoteTask::RemoteTask(pid_t tid, uint64_t gadget)
    : tid_(tid), gadget_(gadget), saved_(arch::get_regs(tid)) {}

void RemoteTask::restore_regs() {
  arch::set_regs(tid_, saved_);
}

long RemoteTask::syscall(long nr, std::initializer_list<uint64_t> args) {
  arch::Regs r = saved_;
  uint64_t a[6] = {};
  size_t i = 0;
  for (uint64_t v : args) a[i++] = v;
  r.rax = nr;
  r.orig_rax = static_cast<uint64_t>(-1L);
  r.rdi = a[0];
  r.rsi = a[1];
  r.rdx = a[2];
  r.r10 = a[3];
  r.r8 = a[4];
  r.r9 = a[5];
  r.rip = gadget_;
  r.eflags &= ~0x100ULL;
  arch::set_regs(tid_, r);
  new_children_.clear();
  int sig = 0;
  for (;;) {
    if (ptrace(PTRACE_SINGLESTEP, tid_, nullptr, sig) < 0)
      fail_sys("cannot step task {} over syscall {}", tid_, nr);
    sig = 0;
    WaitStatus ws = wait_task(tid_);
    if (ws.gone()) fail("task {} {} during remote syscall {}", tid_, ws.str(), nr);
    if (ws.event() == PTRACE_EVENT_FORK || ws.event() == PTRACE_EVENT_CLONE ||
        ws.event() == PTRACE_EVENT_VFORK) {
      unsigned long child = 0;
      ptrace(PTRACE_GETEVENTMSG, tid_, nullptr, &child);
      new_children_.push_back(static_cast<pid_t>(child));
      continue;
    }
    if (ws.event() != 0) continue;
    if (ws.stop_sig() == SIGTRAP) {
      arch::Regs after = arch::get_regs(tid_);
      if (after.rip == gadget_ + 2) return static_cast<long>(after.rax);
      fail("task {} trapped at {:#x} instead of after the syscall at {:#x}", tid_, after.rip,
           gadget_);
    }
    // A signal arrived before the syscall ran. The task's own signals are blocked meanwhile,
    // so it is an artifact of cryo's work and is discarded, except SIGSTOP (it cannot be
    // blocked): the stop someone asked for is noted and made when cryo is done.
    if (ws.stop_sig() == SIGSTOP) stop_requested_ = true;
    log::debug("task {}: discarding signal {} during remote syscall {}", tid_, ws.stop_sig(), nr);
  }
}

uint64_t RemoteTask::check(const char* what, long nr, std::initializer_list<uint64_t> args) {
  long r = syscall(nr, args);
  if (r < 0 && r > -4096) fail_errno(static_cast<int>(-r), "task {}: {} failed", tid_, what);
  return static_cast<uint64_t>(r);
}

void RemoteTask::read_mem(uint64_t addr, void* buf, size_t len) const {
  iovec local{buf, len}, remote{reinterpret_cast<void*>(addr), len};
  ssize_t n = ::process_vm_readv(tid_, &local, 1, &remote, 1, 0);
  if (n != static_cast<ssize_t>(len))
    fail_sys("cannot read {} bytes at {:#x} of task {}", len, addr, tid_);
}

void RemoteTask::write_mem(uint64_t addr, const void* buf, size_t len) const {
  iovec local{const_cast<void*>(buf), len}, remote{reinterpret_cast<void*>(addr), len};
  ssize_t n = ::process_vm_writev(tid_, &local, 1, &remote, 1, 0);
  if (n != static_cast<ssize_t>(len))
    fail_sys("cannot write {} bytes at {:#x} of task {}", len, addr, tid_);
}

uint64_t RemoteTask::map_scratch(size_t len, uint64_t hint) {
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | (hint ? MAP_FIXED_NOREPLACE : 0);
  scratch_ = check("mmap of a scratch area", SYS_mmap,
                   {hint, len, PROT_READ | PROT_WRITE, static_cast<uint64_t>(flags),
                    static_cast<uint64_t>(-1L), 0});
  if (hint && scratch_ != hint) fail("task {}: scratch area not placed at {:#x}", tid_, hint);
  scratch_len_ = len;
  return scratch_;
}

void RemoteTask::unmap_scratch() {
  if (!scratch_) return;
  check("munmap of the scratch area", SYS_munmap, {scratch_, scratch_len_});
  scratch_ = 0;
  scratch_len_ = 0;
}

uint64_t RemoteTask::put(size_t off, const void* data, size_t len) {
  if (off + len > scratch_len_) fail("task {}: scratch area too small for {} bytes", tid_, len);
  write_mem(scratch_ + off, data, len);
  return scratch_ + off;
}

uint64_t find_syscall_gadget(pid_t pid) {
  auto vmas = proc::read_maps(pid);
  // The vDSO first: it is always there and never written.
  std::vector<const proc::Vma*> order;
  for (const auto& v : vmas)
    if (v.x && v.path == "[vdso]") order.push_back(&v);
  for (const auto& v : vmas)
    if (v.x && v.r && v.path != "[vdso]" && v.path != "[vsyscall]") order.push_back(&v);
  std::string buf;
  for (const proc::Vma* v : order) {
    size_t len = std::min<uint64_t>(v->size(), 1 << 20);
    buf.resize(len);
    iovec local{buf.data(), len}, remote{reinterpret_cast<void*>(v->start), len};
    if (::process_vm_readv(pid, &local, 1, &remote, 1, 0) != static_cast<ssize_t>(len)) continue;
    for (size_t i = 0; i + 1 < len; i++)
      if (static_cast<uint8_t>(buf[i]) == 0x0f && static_cast<uint8_t>(buf[i + 1]) == 0x05)
        return v->start + i;
  }
  fail("task {}: no syscall instruction found in its executable mappings", pid);
}

}  // namespace cryo
