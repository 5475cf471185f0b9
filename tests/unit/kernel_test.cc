// Small kernel facts cryo relies on, as pure functions.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstring>
#include <utility>
#include <vector>

#include "base/fd.h"
#include "kernel/syscalls.h"
#include "kernel/userfaultfd.h"

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

TEST(SendFd, OneFdArrivesWithItsBytes) {
  int sp[2], pipefd[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
  ASSERT_EQ(::pipe2(pipefd, O_CLOEXEC), 0);
  Fd a(sp[0]), b(sp[1]), r(pipefd[0]), w(pipefd[1]);
  const int msg = 4242;
  ASSERT_EQ(send_fd(a.get(), &msg, sizeof msg, w.get()), static_cast<ssize_t>(sizeof msg));
  int got = 0, fd = -1;
  ASSERT_EQ(recv_fd(b.get(), &got, sizeof got, &fd), static_cast<ssize_t>(sizeof got));
  Fd received(fd);
  EXPECT_EQ(got, 4242);
  ASSERT_TRUE(received);
  EXPECT_EQ(::fcntl(received.get(), F_GETFD), FD_CLOEXEC);
  struct stat s1, s2;
  ASSERT_EQ(::fstat(w.get(), &s1), 0);
  ASSERT_EQ(::fstat(received.get(), &s2), 0);
  EXPECT_EQ(s1.st_ino, s2.st_ino);  // the same pipe
  // No fd: none received.
  ASSERT_EQ(send_fd(a.get(), &msg, sizeof msg, -1), static_cast<ssize_t>(sizeof msg));
  ASSERT_EQ(recv_fd(b.get(), &got, sizeof got, &fd), static_cast<ssize_t>(sizeof got));
  EXPECT_EQ(fd, -1);
}

TEST(SendFd, TwoFdsAreRefusedAndClosed) {
  int sp[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
  Fd a(sp[0]), b(sp[1]);
  char byte = 1;
  iovec iov{&byte, 1};
  msghdr h{};
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(2 * sizeof(int))] = {};
  h.msg_control = ctl;
  h.msg_controllen = sizeof ctl;
  cmsghdr* c = CMSG_FIRSTHDR(&h);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(2 * sizeof(int));
  const int two[2] = {a.get(), a.get()};
  std::memcpy(CMSG_DATA(c), two, sizeof two);
  ASSERT_EQ(::sendmsg(a.get(), &h, 0), 1);
  auto open_fds = [] {
    size_t n = 0;
    for (int i = 0; i < 1024; i++) n += ::fcntl(i, F_GETFD) >= 0;
    return n;
  };
  const size_t before = open_fds();
  int fd = 7;
  errno = 0;
  EXPECT_EQ(recv_fd(b.get(), &byte, 1, &fd), -1);
  EXPECT_EQ(errno, EPROTO);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(open_fds(), before);  // both received fds closed
}

TEST(PagemapScan, FindsThePresentPagesOfAMapping) {
  const size_t page = 4096;
  char* m = static_cast<char*>(
      ::mmap(nullptr, 8 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(m, MAP_FAILED);
  ::madvise(m, 8 * page, MADV_NOHUGEPAGE);
  m[0] = 1;
  m[3 * page] = 1;
  m[4 * page] = 1;
  Fd pm(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(pm);
  PmScanQuery q;
  q.anyof = kPageIsPresent;
  std::vector<std::pair<uint64_t, uint64_t>> got;
  const uint64_t base = reinterpret_cast<uint64_t>(m);
  const int rc = pagemap_scan(pm.get(), base, base + 8 * page, q,
                              [&](uint64_t s, uint64_t e, uint64_t) { got.emplace_back(s, e); });
  ::munmap(m, 8 * page);
  if (rc == ENOTTY || rc == EINVAL) GTEST_SKIP() << "no PAGEMAP_SCAN (Linux < 6.7)";
  ASSERT_EQ(rc, 0);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], std::make_pair(base, base + page));
  EXPECT_EQ(got[1], std::make_pair(base + 3 * page, base + 5 * page));
}

}  // namespace
}  // namespace cryo::kernel
