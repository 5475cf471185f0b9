#include "arch/x86_64/regs.h"

#include <sys/syscall.h>

#include <asm/ldt.h>
#include <cpuid.h>
#include <elf.h>
#include <sys/ptrace.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>
#include <optional>

#include "base/error.h"

namespace cryo::arch {
namespace {

constexpr size_t kMaxXstate = 16384;

// ERESTART* codes the kernel leaves in ax of a task interrupted in a syscall.
constexpr long kERestartSys = 512, kERestartNoIntr = 513, kERestartNoHand = 514,
               kERestartRestartBlock = 516;

struct Component {
  int bit;
  uint32_t offset, size;
};

// Offset and size of an xsave component in the standard format, from CPUID leaf 0xD. Each
// asked once: in a VM a CPUID traps to the hypervisor (~12 us here), and every thread dumped
// or restored needs a dozen.
Component component(int bit) {
  static std::mutex lock;
  static std::array<std::optional<Component>, 64> known;
  std::lock_guard hold(lock);
  auto& c = known[static_cast<size_t>(bit) & 63];
  if (!c) {
    unsigned a = 0, b = 0, cx = 0, d = 0;
    __cpuid_count(0xd, bit, a, b, cx, d);
    c = Component{bit, b, a};
  }
  return *c;
}

template <typename T>
void copy_out(const std::string& area, uint32_t off, size_t count,
              google::protobuf::RepeatedField<T>* dst) {
  dst->Clear();
  if (off + count * sizeof(T) > area.size()) return;
  dst->Resize(static_cast<int>(count), 0);
  std::memcpy(dst->mutable_data(), area.data() + off, count * sizeof(T));
}

template <typename T>
void copy_in(const google::protobuf::RepeatedField<T>& src, std::string& area, uint32_t off) {
  size_t n = src.size() * sizeof(T);
  if (n == 0) return;
  if (off + n > area.size())
    fail("the xsave area of this CPU ({} bytes) has no room for {} bytes at offset {}", area.size(),
         n, off);
  std::memcpy(area.data() + off, src.data(), n);
}

// User-space selectors of a 64-bit task (__USER_CS, __USER_DS).
constexpr uint64_t kUserCs = 0x33, kUserSs = 0x2b;
constexpr uint64_t kTrapFlag = 0x100;
constexpr uint64_t kUserTop = 0x7ffffffff000ULL;

// The xsave arrays of CRIU's user_x86_xsave_entry: component bit, field, number of elements.
struct XsaveArray {
  int bit;
  const char* name;
  int count;
};
constexpr XsaveArray kXsaveArrays[] = {
    {2, "ymmh_space", 64},   // 16 x 16 bytes, as u32
    {3, "bndreg_state", 8},  // 4 x 16 bytes, as u64
    {4, "bndcsr_state", 2},  // 16 bytes
    {5, "opmask_reg", 8},    // k0..k7
    {6, "zmm_upper", 64},    // 16 x 32 bytes, as u64
    {7, "hi16_zmm", 128},    // 16 x 64 bytes, as u64
    {9, "pkru", 2},          // PKRU and its padding, as u32
};

int xsave_array_size(const user_x86_xsave_entry& x, int bit) {
  switch (bit) {
    case 2:
      return x.ymmh_space_size();
    case 3:
      return x.bndreg_state_size();
    case 4:
      return x.bndcsr_state_size();
    case 5:
      return x.opmask_reg_size();
    case 6:
      return x.zmm_upper_size();
    case 7:
      return x.hi16_zmm_size();
    case 9:
      return x.pkru_size();
  }
  return 0;
}

}  // namespace

Regs get_regs(pid_t tid) {
  Regs r;
  if (ptrace(PTRACE_GETREGS, tid, nullptr, &r) < 0)
    fail_sys("cannot read registers of task {}", tid);
  return r;
}

void set_regs(pid_t tid, const Regs& r) {
  if (ptrace(PTRACE_SETREGS, tid, nullptr, &r) < 0)
    fail_sys("cannot set registers of task {}", tid);
}

std::string get_xstate(pid_t tid) {
  std::string area(kMaxXstate, '\0');
  iovec iov{area.data(), area.size()};
  if (ptrace(PTRACE_GETREGSET, tid, NT_X86_XSTATE, &iov) < 0)
    fail_sys("cannot read the xsave area of task {}", tid);
  area.resize(iov.iov_len);
  return area;
}

size_t xstate_used_size(const std::string& area, int also) {
  constexpr size_t kLegacyAndHeader = 576;
  if (area.size() < kLegacyAndHeader) return area.size();
  uint64_t bv;
  std::memcpy(&bv, area.data() + 512, sizeof bv);
  size_t used = kLegacyAndHeader;
  for (int bit = 2; bit < 63; bit++) {
    if (!(bv & (1ULL << bit)) && bit != also) continue;
    Component c = component(bit);
    if (c.size) used = std::max<size_t>(used, c.offset + c.size);
  }
  return std::min(used, area.size());
}

void set_xstate(pid_t tid, const std::string& area) {
  std::string copy = area;
  iovec iov{copy.data(), copy.size()};
  if (ptrace(PTRACE_SETREGSET, tid, NT_X86_XSTATE, &iov) < 0)
    fail_sys("cannot set the xsave area of task {}", tid);
}

void regs_to_image(const Regs& r, user_x86_regs_entry* e) {
  e->set_r15(r.r15);
  e->set_r14(r.r14);
  e->set_r13(r.r13);
  e->set_r12(r.r12);
  e->set_bp(r.rbp);
  e->set_bx(r.rbx);
  e->set_r11(r.r11);
  e->set_r10(r.r10);
  e->set_r9(r.r9);
  e->set_r8(r.r8);
  e->set_ax(r.rax);
  e->set_cx(r.rcx);
  e->set_dx(r.rdx);
  e->set_si(r.rsi);
  e->set_di(r.rdi);
  e->set_orig_ax(r.orig_rax);
  e->set_ip(r.rip);
  e->set_cs(r.cs);
  e->set_flags(r.eflags);
  e->set_sp(r.rsp);
  e->set_ss(r.ss);
  e->set_fs_base(r.fs_base);
  e->set_gs_base(r.gs_base);
  e->set_ds(r.ds);
  e->set_es(r.es);
  e->set_fs(r.fs);
  e->set_gs(r.gs);
  e->set_mode(NATIVE);
}

Regs regs_from_image(const user_x86_regs_entry& e) {
  if (e.has_mode() && e.mode() != NATIVE) fail("32-bit (compat) tasks are not supported");
  Regs r{};
  r.r15 = e.r15();
  r.r14 = e.r14();
  r.r13 = e.r13();
  r.r12 = e.r12();
  r.rbp = e.bp();
  r.rbx = e.bx();
  r.r11 = e.r11();
  r.r10 = e.r10();
  r.r9 = e.r9();
  r.r8 = e.r8();
  r.rax = e.ax();
  r.rcx = e.cx();
  r.rdx = e.dx();
  r.rsi = e.si();
  r.rdi = e.di();
  r.orig_rax = e.orig_ax();
  r.rip = e.ip();
  r.cs = e.cs();
  r.eflags = e.flags();
  r.rsp = e.sp();
  r.ss = e.ss();
  r.fs_base = e.fs_base();
  r.gs_base = e.gs_base();
  r.ds = e.ds();
  r.es = e.es();
  r.fs = e.fs();
  r.gs = e.gs();
  return r;
}

void check_regs_image(const user_x86_regs_entry& e, const std::string& image) {
  constexpr const char* kRedo = "corrupt or edited images: dump the tree again";
  auto canonical = [](uint64_t a) {
    // Bits 63..47 all equal.
    uint64_t top = a >> 47;
    return top == 0 || top == (1ULL << 17) - 1;
  };
  if (e.has_mode() && e.mode() != NATIVE)
    fail("image {}: gpregs.mode {}: 32-bit (compat) tasks are not supported", image,
         static_cast<int>(e.mode()));
  if (e.ip() == 0) fail("image {}: gpregs.ip is 0: the thread cannot run: {}", image, kRedo);
  if (!canonical(e.ip()))
    fail("image {}: gpregs.ip {:#x} is not canonical (bits 63..47 differ): {}", image, e.ip(),
         kRedo);
  if (e.ip() >= kUserTop)
    fail("image {}: gpregs.ip {:#x} is outside user space: {}", image, e.ip(), kRedo);
  if (e.sp() == 0) fail("image {}: gpregs.sp is 0: the thread cannot run: {}", image, kRedo);
  if (!canonical(e.sp()))
    fail("image {}: gpregs.sp {:#x} is not canonical (bits 63..47 differ): {}", image, e.sp(),
         kRedo);
  if (e.flags() & kTrapFlag)
    fail(
        "image {}: gpregs.flags {:#x} has the trap flag (TF, 0x100) set: the thread would stop "
        "with SIGTRAP after one instruction: {}",
        image, e.flags(), kRedo);
  if (e.cs() != kUserCs || e.ss() != kUserSs)
    fail(
        "image {}: gpregs.cs {:#x} / ss {:#x} are not the 64-bit user selectors ({:#x} / {:#x}): "
        "{}",
        image, e.cs(), e.ss(), kUserCs, kUserSs, kRedo);
  // PTRACE_SETREGS refuses these; say which one.
  if (e.fs_base() >= kUserTop || e.gs_base() >= kUserTop)
    fail("image {}: gpregs.fs_base {:#x} / gs_base {:#x}: outside user space: {}", image,
         e.fs_base(), e.gs_base(), kRedo);
}

uint64_t cpu_xfeatures() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  __cpuid(1, a, b, c, d);
  if (!(c & bit_OSXSAVE)) return 0x3;  // x87 and SSE only
  uint32_t lo, hi;
  asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return uint64_t{hi} << 32 | lo;
}

void check_fpregs_image(const user_x86_fpregs_entry& e, uint64_t xfeatures,
                        const std::string& image) {
  constexpr const char* kRedo = "corrupt or edited images: dump the tree again";
  // Sizes of CRIU's user_x86_fpregs_entry: the FXSAVE area's 8 x87 registers (16 bytes each)
  // and 16 XMM registers, as u32; padding is the area's last 96 bytes.
  if (e.st_space_size() != 32)
    fail("image {}: fpregs.st_space has {} elements, expected 32: {}", image, e.st_space_size(),
         kRedo);
  if (e.xmm_space_size() != 64)
    fail("image {}: fpregs.xmm_space has {} elements, expected 64: {}", image, e.xmm_space_size(),
         kRedo);
  if (e.padding_size() != 0 && e.padding_size() != 24)
    fail("image {}: fpregs.padding has {} elements, expected 24: {}", image, e.padding_size(),
         kRedo);
  if (!e.has_xsave()) return;
  const user_x86_xsave_entry& x = e.xsave();
  for (const XsaveArray& a : kXsaveArrays) {
    const int n = xsave_array_size(x, a.bit);
    const bool in_use = x.xstate_bv() & (1ULL << a.bit);
    if (n != 0 && n != a.count)
      fail("image {}: fpregs.xsave.{} has {} elements, expected {}: {}", image, a.name, n, a.count,
           kRedo);
    if (in_use && n == 0)
      fail("image {}: fpregs.xsave.xstate_bv {:#x} says {} is in use, but it is empty: {}", image,
           x.xstate_bv(), a.name, kRedo);
  }
  if (uint64_t missing = x.xstate_bv() & ~xfeatures)
    fail(
        "image {}: fpregs.xsave.xstate_bv {:#x} holds register state this CPU does not have "
        "(components {:#x}; this CPU has {:#x}): restore on a CPU like the one of the dump",
        image, x.xstate_bv(), missing, xfeatures);
}

// Legacy FXSAVE region layout (first 512 bytes of the xsave area).
struct Fxsave {
  uint16_t cwd, swd, twd, fop;
  uint64_t rip, rdp;
  uint32_t mxcsr, mxcsr_mask;
  uint32_t st_space[32];
  uint32_t xmm_space[64];
  uint32_t padding[12];
  uint32_t sw_reserved[12];
};
static_assert(sizeof(Fxsave) == 512);

void xstate_to_image(const std::string& area, user_x86_fpregs_entry* e) {
  if (area.size() < 512) fail("xsave area too small ({} bytes)", area.size());
  Fxsave fx;
  std::memcpy(&fx, area.data(), sizeof fx);
  e->set_cwd(fx.cwd);
  e->set_swd(fx.swd);
  e->set_twd(fx.twd);
  e->set_fop(fx.fop);
  e->set_rip(fx.rip);
  e->set_rdp(fx.rdp);
  e->set_mxcsr(fx.mxcsr);
  e->set_mxcsr_mask(fx.mxcsr_mask);
  copy_out<uint32_t>(area, offsetof(Fxsave, st_space), 32, e->mutable_st_space());
  copy_out<uint32_t>(area, offsetof(Fxsave, xmm_space), 64, e->mutable_xmm_space());
  copy_out<uint32_t>(area, offsetof(Fxsave, padding), 24, e->mutable_padding());
  if (area.size() < 576) return;
  uint64_t xstate_bv;
  std::memcpy(&xstate_bv, area.data() + 512, 8);
  auto* x = e->mutable_xsave();
  x->set_xstate_bv(xstate_bv);
  copy_out<uint32_t>(area, component(2).offset, 64, x->mutable_ymmh_space());
  copy_out<uint64_t>(area, component(3).offset, 8, x->mutable_bndreg_state());
  copy_out<uint64_t>(area, component(4).offset, 2, x->mutable_bndcsr_state());
  copy_out<uint64_t>(area, component(5).offset, 8, x->mutable_opmask_reg());
  copy_out<uint64_t>(area, component(6).offset, 64, x->mutable_zmm_upper());
  copy_out<uint64_t>(area, component(7).offset, 128, x->mutable_hi16_zmm());
  copy_out<uint32_t>(area, component(9).offset, 2, x->mutable_pkru());
  // Components the CPU lacks report offset 0: never copy those over the legacy area.
  for (int bit : {3, 4, 5, 6, 7, 9}) {
    if (component(bit).offset == 0) {
      switch (bit) {
        case 3:
          x->clear_bndreg_state();
          break;
        case 4:
          x->clear_bndcsr_state();
          break;
        case 5:
          x->clear_opmask_reg();
          break;
        case 6:
          x->clear_zmm_upper();
          break;
        case 7:
          x->clear_hi16_zmm();
          break;
        case 9:
          x->clear_pkru();
          break;
      }
    }
  }
  if (component(2).offset == 0) x->clear_ymmh_space();
}

void xstate_from_image(const user_x86_fpregs_entry& e, std::string& area) {
  if (area.size() < 512) fail("xsave area too small ({} bytes)", area.size());
  Fxsave fx;
  std::memcpy(&fx, area.data(), sizeof fx);
  fx.cwd = e.cwd();
  fx.swd = e.swd();
  fx.twd = e.twd();
  fx.fop = e.fop();
  fx.rip = e.rip();
  fx.rdp = e.rdp();
  fx.mxcsr = e.mxcsr();
  fx.mxcsr_mask = e.mxcsr_mask();
  std::memcpy(area.data(), &fx, sizeof fx);
  copy_in<uint32_t>(e.st_space(), area, offsetof(Fxsave, st_space));
  copy_in<uint32_t>(e.xmm_space(), area, offsetof(Fxsave, xmm_space));
  if (!e.has_xsave() || area.size() < 576) return;
  const auto& x = e.xsave();
  uint64_t bv = x.xstate_bv();
  std::memcpy(area.data() + 512, &bv, 8);
  uint64_t xcomp = 0;  // standard format
  std::memcpy(area.data() + 520, &xcomp, 8);
  auto put32 = [&](const google::protobuf::RepeatedField<uint32_t>& f, int bit) {
    if (auto c = component(bit); c.offset) copy_in<uint32_t>(f, area, c.offset);
  };
  auto put64 = [&](const google::protobuf::RepeatedField<uint64_t>& f, int bit) {
    if (auto c = component(bit); c.offset) copy_in<uint64_t>(f, area, c.offset);
  };
  put32(x.ymmh_space(), 2);
  put64(x.bndreg_state(), 3);
  put64(x.bndcsr_state(), 4);
  put64(x.opmask_reg(), 5);
  put64(x.zmm_upper(), 6);
  put64(x.hi16_zmm(), 7);
  put32(x.pkru(), 9);
}

void prepare_restart(Regs& r, bool eintr_nohand) {
  if (static_cast<long>(r.orig_rax) < 0) return;
  long ret = static_cast<long>(r.rax);
  switch (-ret) {
    case kERestartNoHand:
      if (eintr_nohand) {
        r.rax = static_cast<uint64_t>(-4L);
        break;
      }
      [[fallthrough]];
    case kERestartSys:
    case kERestartNoIntr:
      r.rax = r.orig_rax;
      r.rip -= 2;
      break;
    case kERestartRestartBlock:
      // The kernel's restart state (the time left to sleep) is not in the images. Sleeps,
      // polls and timed futex waits start over with their arguments, which are still in the
      // registers: waiting longer is harmless, while an EINTR (what CRIU gives) kills programs that
      // block every signal and take none as a reason to stop. Other calls get EINTR.
      if (r.orig_rax == SYS_poll || r.orig_rax == SYS_nanosleep ||
          r.orig_rax == SYS_clock_nanosleep || r.orig_rax == SYS_futex) {
        r.rax = r.orig_rax;
        r.rip -= 2;
      } else {
        r.rax = static_cast<uint64_t>(-4L);
      }
      break;
    default:
      break;
  }
  r.orig_rax = static_cast<uint64_t>(-1L);
}

namespace {

constexpr unsigned kTlsFirst = 12, kTlsCount = 3;        // GDT_ENTRY_TLS_MIN, GDT_ENTRY_TLS_ENTRIES
constexpr int kGetThreadArea = 25, kSetThreadArea = 26;  // PTRACE_{GET,SET}_THREAD_AREA

// What clear_user_desc() gives: a slot never set.
bool tls_empty(const user_desc_t& d) {
  return !d.base_addr() && !d.limit() && !d.seg_32bit() && !d.contents_h() && !d.contents_l() &&
         d.read_exec_only() && !d.limit_in_pages() && d.seg_not_present() && !d.usable();
}

}  // namespace

void tls_to_image(pid_t tid, thread_info_x86* ti) {
  for (unsigned i = 0; i < kTlsCount; i++) {
    user_desc u{};
    if (::ptrace(static_cast<__ptrace_request>(kGetThreadArea), tid,
                 reinterpret_cast<void*>(static_cast<uintptr_t>(kTlsFirst + i)), &u) < 0) {
      if (errno == EIO || errno == EINVAL) return;  // no 32-bit emulation: nothing to save
      fail_sys("cannot read TLS descriptor {} of task {}", kTlsFirst + i, tid);
    }
    user_desc_t* d = ti->add_tls();
    d->set_entry_number(kTlsFirst + i);
    d->set_base_addr(u.base_addr);
    d->set_limit(u.limit);
    d->set_seg_32bit(u.seg_32bit);
    d->set_contents_h(u.contents & 2);
    d->set_contents_l(u.contents & 1);
    d->set_read_exec_only(u.read_exec_only);
    d->set_limit_in_pages(u.limit_in_pages);
    d->set_seg_not_present(u.seg_not_present);
    d->set_usable(u.useable);
  }
}

void tls_from_image(pid_t tid, const thread_info_x86& ti, const std::string& image) {
  for (const user_desc_t& d : ti.tls()) {
    if (d.entry_number() < kTlsFirst || d.entry_number() >= kTlsFirst + kTlsCount)
      fail("image {}: TLS descriptor number {} is not one of the TLS slots {}..{}", image,
           d.entry_number(), kTlsFirst, kTlsFirst + kTlsCount - 1);
    if (tls_empty(d)) continue;
    user_desc u{};
    u.entry_number = d.entry_number();
    u.base_addr = d.base_addr();
    u.limit = d.limit();
    u.seg_32bit = d.seg_32bit();
    u.contents = (d.contents_h() ? 2 : 0) | (d.contents_l() ? 1 : 0);
    u.read_exec_only = d.read_exec_only();
    u.limit_in_pages = d.limit_in_pages();
    u.seg_not_present = d.seg_not_present();
    u.useable = d.usable();
    if (::ptrace(static_cast<__ptrace_request>(kSetThreadArea), tid,
                 reinterpret_cast<void*>(static_cast<uintptr_t>(u.entry_number)), &u) < 0)
      fail_sys("task {}: cannot set TLS descriptor {} from image {}", tid, u.entry_number, image);
  }
}

}  // namespace cryo::arch
