// userfaultfd write-protection in asynchronous mode and the PAGEMAP_SCAN ioctl of
// /proc/PID/pagemap (both Linux 6.7): the names and ABI numbers Debian 12's headers (Linux 6.1)
// lack. Memory change tracking (dump/mem_track.h) uses them where soft-dirty is missing.
#pragma once

#include <errno.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

#include <cstdint>

namespace cryo::kernel {

// userfaultfd(2) flag: faults from kernel mode are not handled, which lets a task without
// CAP_SYS_PTRACE create one whatever vm.unprivileged_userfaultfd says.
constexpr uint64_t kUffdUserModeOnly = 1;
// UFFDIO_API features.
constexpr uint64_t kUffdFeatureWpUnpopulated = 1ULL << 13;  // never-touched pages count too
constexpr uint64_t kUffdFeatureWpAsync = 1ULL << 15;        // a write just clears the WP bit

// struct page_region: pages [start, end) sharing `categories`.
struct PageRegion {
  uint64_t start, end, categories;
};
// struct pm_scan_arg.
struct PmScanArg {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
  uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
constexpr unsigned long kPagemapScan = _IOWR('f', 16, PmScanArg);
// pm_scan_arg.flags.
constexpr uint64_t kPmScanWpMatching = 1 << 0;    // write-protect the pages found
constexpr uint64_t kPmScanCheckWpAsync = 1 << 1;  // EPERM unless every VMA has async WP
// Page categories.
constexpr uint64_t kPageIsWritten = 1 << 1;
constexpr uint64_t kPageIsFile = 1 << 2;
constexpr uint64_t kPageIsPresent = 1 << 3;
constexpr uint64_t kPageIsSwapped = 1 << 4;
constexpr uint64_t kPageIsPfnZero = 1 << 5;

// What a PAGEMAP_SCAN asks (the fields of struct pm_scan_arg): pages whose categories, XORed
// with `inverted`, have all of `mask` and (if any) one of `anyof`; regions are split where the
// `ret` categories differ (0: mask | anyof).
struct PmScanQuery {
  uint64_t flags = 0, inverted = 0, mask = 0, anyof = 0, ret = 0;
};
// Result of pagemap_scan beside 0 and an errno: a call that made no progress.
constexpr int kPmScanStuck = -1;

// PAGEMAP_SCAN of [start, end) on /proc/PID/pagemap `fd`, in as many calls as the regions
// need: on(start, end, categories) for each. Returns 0, the errno of a failed call (EPERM
// with kPmScanCheckWpAsync: a mapping in the range has no asynchronous userfaultfd), or
// kPmScanStuck.
template <class On>
int pagemap_scan(int fd, uint64_t start, uint64_t end, const PmScanQuery& q, On&& on) {
  PageRegion vec[512];
  while (start < end) {
    PmScanArg a{};
    a.size = sizeof a;
    a.flags = q.flags;
    a.start = start;
    a.end = end;
    a.vec = reinterpret_cast<uint64_t>(vec);
    a.vec_len = sizeof vec / sizeof vec[0];
    a.category_inverted = q.inverted;
    a.category_mask = q.mask;
    a.category_anyof_mask = q.anyof;
    a.return_mask = q.ret ? q.ret : q.mask | q.anyof;
    const long n = ::ioctl(fd, kPagemapScan, &a);
    if (n < 0) return errno;
    for (long i = 0; i < n; i++) on(vec[i].start, vec[i].end, vec[i].categories);
    if (a.walk_end <= start) return kPmScanStuck;
    start = a.walk_end;
  }
  return 0;
}

}  // namespace cryo::kernel
