// Gadget search and the recovery signal frame (src/infect/gadgets, src/arch/x86_64/sigframe).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "arch/x86_64/sigframe.h"
#include "infect/gadgets.h"

namespace cryo {
namespace {

TEST(Gadgets, SyscallFollowedByClearsAndRet) {
  // mov $0xe5,%eax; syscall; xor %edx,%edx; xor %r11d,%r11d; ret
  std::vector<uint8_t> code = {0xb8, 0xe5, 0, 0, 0, 0x0f, 0x05, 0x31, 0xd2, 0x45, 0x31, 0xdb, 0xc3};
  Gadgets g;
  scan_gadgets(code.data(), code.size(), 0x1000, &g);
  EXPECT_EQ(g.syscall, 0x1005u);
  EXPECT_EQ(g.syscall_ret, 0x1005u);
  EXPECT_EQ(g.sigreturn, 0u);
}

TEST(Gadgets, SyscallFollowedByMemoryAccessIsNoReturnGadget) {
  // syscall; lea -0x10(%rbp),%rsp; ret
  std::vector<uint8_t> code = {0x0f, 0x05, 0x48, 0x8d, 0x65, 0xf0, 0xc3};
  Gadgets g;
  scan_gadgets(code.data(), code.size(), 0, &g);
  EXPECT_EQ(g.syscall, 0u + 0);
  EXPECT_EQ(g.syscall_ret, 0u);
}

TEST(Gadgets, SigreturnBothEncodings) {
  std::vector<uint8_t> a = {0x90, 0xb8, 0x0f, 0, 0, 0, 0x0f, 0x05};
  std::vector<uint8_t> b = {0x48, 0xc7, 0xc0, 0x0f, 0, 0, 0, 0x0f, 0x05};
  Gadgets ga, gb;
  scan_gadgets(a.data(), a.size(), 0x100, &ga);
  scan_gadgets(b.data(), b.size(), 0x200, &gb);
  EXPECT_EQ(ga.sigreturn, 0x101u);
  EXPECT_EQ(gb.sigreturn, 0x200u);
  EXPECT_TRUE(!ga.can_recover());
}

TEST(Gadgets, TruncatedSequenceIsNotAGadget) {
  std::vector<uint8_t> code = {0x0f, 0x05, 0x31};
  Gadgets g;
  scan_gadgets(code.data(), code.size(), 0, &g);
  EXPECT_EQ(g.syscall_ret, 0u);
}

TEST(Sigframe, LayoutAsRtSigreturnReadsIt) {
  arch::Regs r{};
  r.rip = 0x401000;
  r.rsp = 0x7ffff000;
  r.rax = 42;
  r.orig_rax = static_cast<uint64_t>(-1L);
  r.r12 = 0x1212;
  r.eflags = 0x246;
  r.cs = 0x33;
  r.ss = 0x2b;
  std::string xstate(832, '\0');
  arch::Sigframe f = arch::build_sigframe(0x7fffe000, r, xstate, 0x5, 0xdead0);
  EXPECT_EQ(f.addr % 64, 0u);
  EXPECT_LE(f.addr + f.bytes.size(), 0x7fffe000u);
  uint64_t word;
  std::memcpy(&word, f.bytes.data(), 8);
  EXPECT_EQ(word, 0xdead0u);  // pretcode: where "ret" goes
  const size_t mc = 8 + 40;   // pretcode, then uc_flags, uc_link, uc_stack
  std::memcpy(&word, f.bytes.data() + mc + 4 * 8, 8);
  EXPECT_EQ(word, 0x1212u);  // r12
  std::memcpy(&word, f.bytes.data() + mc + 16 * 8, 8);
  EXPECT_EQ(word, 0x401000u);  // rip
  std::memcpy(&word, f.bytes.data() + mc + 13 * 8, 8);
  EXPECT_EQ(word, 42u);  // rax
  uint64_t fp;
  std::memcpy(&fp, f.bytes.data() + mc + 184, 8);
  EXPECT_EQ(fp % 64, 0u);
  uint32_t magic1, magic2, size;
  std::memcpy(&magic1, f.bytes.data() + (fp - f.addr) + 464, 4);
  std::memcpy(&size, f.bytes.data() + (fp - f.addr) + 464 + 16, 4);
  EXPECT_EQ(size, 576u);  // nothing in use beyond the legacy area and the header
  std::memcpy(&magic2, f.bytes.data() + (fp - f.addr) + size, 4);
  EXPECT_EQ(magic1, 0x46505853u);
  EXPECT_EQ(magic2, 0x46505845u);
  std::memcpy(&word, f.bytes.data() + 8 + 296, 8);
  EXPECT_EQ(word, 0x5u);  // uc_sigmask
}

TEST(Sigframe, InterruptedSyscallIsRestarted) {
  arch::Regs r{};
  r.rip = 0x401002;
  r.orig_rax = 0;                        // read
  r.rax = static_cast<uint64_t>(-512L);  // -ERESTARTSYS
  arch::Sigframe f = arch::build_sigframe(0x7fffe000, r, std::string(832, '\0'), 0, 1);
  uint64_t rip, rax;
  std::memcpy(&rip, f.bytes.data() + 48 + 16 * 8, 8);
  std::memcpy(&rax, f.bytes.data() + 48 + 13 * 8, 8);
  EXPECT_EQ(rip, 0x401000u);
  EXPECT_EQ(rax, 0u);
}

}  // namespace
}  // namespace cryo
