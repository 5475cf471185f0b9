// Small kernel facts cryo relies on, as pure functions.
#include <gtest/gtest.h>

#include "kernel/syscalls.h"

namespace cryo::kernel {
namespace {

TEST(Rseq, InsideTheCriticalSectionResumesAtAbort) {
  RseqCs cs{0, 0, 0x1000, 0x20, 0x2000};
  EXPECT_EQ(rseq_resume_ip(0x1000, cs), 0x2000u);  // at the start
  EXPECT_EQ(rseq_resume_ip(0x101f, cs), 0x2000u);  // last byte before the commit's end
  EXPECT_EQ(rseq_resume_ip(0x1020, cs), 0x1020u);  // after the commit: left alone
  EXPECT_EQ(rseq_resume_ip(0x0fff, cs), 0x0fffu);
  EXPECT_EQ(rseq_resume_ip(0x2000, cs), 0x2000u);
}

TEST(Rseq, EmptySectionAndWrapAround) {
  RseqCs empty{0, 0, 0x1000, 0, 0x2000};
  EXPECT_EQ(rseq_resume_ip(0x1000, empty), 0x1000u);
  RseqCs high{0, 0, ~0ULL - 0x10, 0x8, 0x3000};
  EXPECT_EQ(rseq_resume_ip(5, high), 5u);  // no wrap-around into low addresses
  EXPECT_EQ(rseq_resume_ip(~0ULL - 0xc, high), 0x3000u);
}

}  // namespace
}  // namespace cryo::kernel
