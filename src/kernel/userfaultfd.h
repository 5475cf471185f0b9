// userfaultfd write-protection in asynchronous mode and the PAGEMAP_SCAN ioctl of
// /proc/PID/pagemap (both Linux 6.7): the names and ABI numbers Debian 12's headers (Linux 6.1)
// lack. Memory change tracking (dump/mem_track.h) uses them where soft-dirty is missing.
#pragma once

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

}  // namespace cryo::kernel
