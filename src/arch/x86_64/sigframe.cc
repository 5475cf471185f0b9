#include "arch/x86_64/sigframe.h"

#include <cstring>

#include "base/error.h"

namespace cryo::arch {
namespace {

// The kernel's x86_64 signal frame layout (uapi asm/sigcontext.h, asm/ucontext.h).
struct SigContext {
  uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
  uint64_t di, si, bp, bx, dx, ax, cx, sp, ip, flags;
  uint16_t cs, gs, fs, ss;
  uint64_t err, trapno, oldmask, cr2;
  uint64_t fpstate;
  uint64_t reserved1[8];
};
static_assert(sizeof(SigContext) == 256);

struct StackT {
  uint64_t sp;
  int32_t flags;
  int32_t pad;
  uint64_t size;
};

struct UContext {
  uint64_t flags;
  uint64_t link;
  StackT stack;
  SigContext mcontext;
  uint64_t sigmask;
};
static_assert(sizeof(UContext) == 304);

struct RtSigframe {
  uint64_t pretcode;
  UContext uc;
  uint8_t siginfo[128];
};

constexpr uint64_t kUcFpXstate = 0x1, kUcSigcontextSs = 0x2, kUcStrictRestoreSs = 0x4;
constexpr uint32_t kFpXstateMagic1 = 0x46505853, kFpXstateMagic2 = 0x46505845;
constexpr size_t kSwBytesOffset = 464;  // fx_sw_bytes in the reserved tail of the fxsave area
// An altstack mode the kernel rejects with EINVAL: rt_sigreturn then leaves the thread's
// sigaltstack as it is (cryo cannot know it before its first syscall in the thread).
constexpr int32_t kKeepAltstack = 0x7;

struct FxSwBytes {
  uint32_t magic1;
  uint32_t extended_size;
  uint64_t xfeatures;
  uint32_t xstate_size;
  uint32_t padding[7];
};
static_assert(sizeof(FxSwBytes) == 48);

uint64_t align_down(uint64_t v, uint64_t a) {
  return v & ~(a - 1);
}

}  // namespace

Sigframe build_sigframe(uint64_t top, const Regs& regs, const std::string& xstate, uint64_t sigmask,
                        uint64_t sigreturn_gadget) {
  if (xstate.size() < 576)
    fail("xsave area of {} bytes is too small for a signal frame", xstate.size());
  Regs r = regs;
  // rt_sigreturn resumes without the kernel's syscall restart, and a signal held during the
  // dump may be handled right after it.
  prepare_restart(r, /*eintr_nohand=*/true);

  // The xsave area as rt_sigreturn wants it: XCR0 (which ptrace leaves in the first word
  // of the software-reserved bytes) as the features, PKRU always present (the kernel puts
  // it in every signal frame), and a size no larger than the thread's own buffer (a thread
  // that never used AMX tiles has a smaller one than the largest area ptrace shows).
  constexpr int kPkruBit = 9;
  uint64_t xcr0 = 0, bv = 0;
  std::memcpy(&xcr0, xstate.data() + kSwBytesOffset, sizeof xcr0);
  std::memcpy(&bv, xstate.data() + 512, sizeof bv);
  if (!xcr0) xcr0 = bv | 3;
  if (xcr0 & (1ULL << kPkruBit)) bv |= 1ULL << kPkruBit;
  const size_t used = xstate_used_size(xstate, (xcr0 >> kPkruBit) & 1 ? kPkruBit : -1);

  const size_t fp_len = used + sizeof(uint32_t);
  const uint64_t fp_addr = align_down(top - fp_len, 64);
  const uint64_t addr = align_down(fp_addr - sizeof(RtSigframe), 64);
  Sigframe f;
  f.addr = addr;
  f.bytes.assign(fp_addr + fp_len - addr, '\0');

  RtSigframe frame{};
  frame.pretcode = sigreturn_gadget;
  frame.uc.flags = kUcFpXstate | kUcSigcontextSs | kUcStrictRestoreSs;
  frame.uc.stack.flags = kKeepAltstack;
  SigContext& sc = frame.uc.mcontext;
  sc.r8 = r.r8, sc.r9 = r.r9, sc.r10 = r.r10, sc.r11 = r.r11;
  sc.r12 = r.r12, sc.r13 = r.r13, sc.r14 = r.r14, sc.r15 = r.r15;
  sc.di = r.rdi, sc.si = r.rsi, sc.bp = r.rbp, sc.bx = r.rbx;
  sc.dx = r.rdx, sc.ax = r.rax, sc.cx = r.rcx, sc.sp = r.rsp, sc.ip = r.rip;
  sc.flags = r.eflags;
  sc.cs = static_cast<uint16_t>(r.cs);
  sc.ss = static_cast<uint16_t>(r.ss);
  sc.fpstate = fp_addr;
  frame.uc.sigmask = sigmask;
  std::memcpy(f.bytes.data(), &frame, sizeof frame);

  char* fp = f.bytes.data() + (fp_addr - addr);
  std::memcpy(fp, xstate.data(), used);
  std::memcpy(fp + 512, &bv, sizeof bv);
  // The software-reserved bytes tell rt_sigreturn that a whole xsave area follows.
  FxSwBytes sw{};
  sw.magic1 = kFpXstateMagic1;
  sw.extended_size = static_cast<uint32_t>(fp_len);
  sw.xfeatures = xcr0;
  sw.xstate_size = static_cast<uint32_t>(used);
  std::memcpy(fp + kSwBytesOffset, &sw, sizeof sw);
  uint32_t magic2 = kFpXstateMagic2;
  std::memcpy(fp + used, &magic2, sizeof magic2);
  return f;
}

}  // namespace cryo::arch
