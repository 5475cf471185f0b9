#include "restore/validate.h"

#include <sys/mman.h>

#include <unistd.h>

#include <cstdlib>

#include "base/error.h"
#include "image/image.h"
#include "image/pagemap.h"
#include "kernel/syscalls.h"
#include "pages/lazy.h"
#include "proc/proc.h"

namespace cryo::restore {
namespace {

constexpr uint64_t kPage = kernel::kPageSize;
constexpr uint32_t kNoId = 0xffffffffu;  // -1: "leave unchanged" to set*id()
constexpr int kNgroupsMax = 65536;       // the kernel's NGROUPS_MAX
// PR_SET_MM_MAP takes an auxv no larger than the kernel's saved_auxv (a few dozen words).
constexpr int kAuxvMax = 1024;
constexpr uint64_t kPipeDefaultSize = 16 * kPage;  // a new pipe's capacity
constexpr uint32_t kUnsupportedVma = image::kVmaAioring | image::kVmaUnsupp;
// What the tail of every refusal says: the images are not what a dump wrote.
constexpr const char* kRedo = "corrupt or edited images: dump the tree again";

uint64_t sysctl(const char* path, uint64_t dflt) {
  auto s = proc::try_read_file(path);
  if (!s) return dflt;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s->c_str(), &end, 10);
  return end == s->c_str() ? dflt : v;
}

bool private_pages(const vma_entry& v) {
  return (v.status() & (image::kVmaAnonPrivate | image::kVmaFilePrivate)) &&
         !(v.status() & (image::kVmaVdso | image::kVmaVvar | image::kVmaVsyscall));
}

}  // namespace

Limits Limits::of_system() {
  Limits l;
  l.mmap_min_addr = sysctl("/proc/sys/vm/mmap_min_addr", l.mmap_min_addr);
  l.max_map_count = sysctl("/proc/sys/vm/max_map_count", l.max_map_count);
  l.nr_open = sysctl("/proc/sys/fs/nr_open", l.nr_open);
  l.pipe_max_size = sysctl("/proc/sys/fs/pipe-max-size", l.pipe_max_size);
  // With CAP_SYS_RESOURCE a pipe may grow past pipe-max-size, up to the kernel's 2 GiB.
  if (auto st = proc::try_read_file("/proc/self/status")) try {
      constexpr int kCapSysResource = 24;
      if (proc::parse_status(*st).cap_eff & (1ULL << kCapSysResource)) l.pipe_max_size = 1U << 31;
    } catch (const Error&) {
    }
  return l;
}

void check_mm(const mm_entry& mm, const std::string& image, const Limits& lim) {
  if (static_cast<uint64_t>(mm.vmas_size()) > lim.max_map_count)
    fail("image {}: {} mappings, more than vm.max_map_count ({}) allows here: {}", image,
         mm.vmas_size(), lim.max_map_count, kRedo);
  uint64_t prev_end = 0;
  for (int i = 0; i < mm.vmas_size(); i++) {
    const vma_entry& v = mm.vmas(i);
    const std::string what =
        fmt::format("image {}: vmas[{}] ({:#x}-{:#x})", image, i, v.start(), v.end());
    if (v.start() % kPage || v.end() % kPage)
      fail("{}: start and end must be page aligned: {}", what, kRedo);
    if (v.start() >= v.end()) fail("{}: start must be below end: {}", what, kRedo);
    if (v.status() & image::kVmaVsyscall) {
      if (v.start() != kVsyscallStart || v.end() != kVsyscallStart + kPage)
        fail("{}: the vsyscall page is at {:#x}-{:#x} on x86_64: {}", what, kVsyscallStart,
             kVsyscallStart + kPage, kRedo);
    } else {
      if (v.start() < lim.mmap_min_addr)
        fail(
            "{}: starts below vm.mmap_min_addr ({:#x}), where the kernel maps nothing: {} (or "
            "lower vm.mmap_min_addr)",
            what, lim.mmap_min_addr, kRedo);
      if (v.end() > kUserTop)
        fail("{}: ends beyond the user address space ({:#x}): {}", what, kUserTop, kRedo);
    }
    if (i > 0 && v.start() < prev_end)
      fail("{}: overlaps vmas[{}] or comes before it (mappings are sorted and apart): {}", what,
           i - 1, kRedo);
    if (v.status() & kUnsupportedVma)
      fail("{}: a mapping of status {:#x} (an AIO ring) cannot be restored", what, v.status());
    if ((v.status() & image::kVmaSocket) && !(v.flags() & MAP_SHARED))
      fail("{}: a socket's ring mapped privately: {}", what, kRedo);
    if (v.status() & (image::kVmaFilePrivate | image::kVmaFileShared | image::kVmaAnonShared)) {
      if (v.pgoff() % kPage)
        fail("{}: pgoff {:#x} is not page aligned: {}", what, v.pgoff(), kRedo);
      if (v.pgoff() > kSharedObjectMax - (v.end() - v.start()))
        fail("{}: pgoff {:#x} reaches past any file or object: {}", what, v.pgoff(), kRedo);
    }
    prev_end = v.end();
  }

  struct Range {
    const char* name;
    uint64_t lo, hi;
  } ranges[] = {{"mm_start_code..mm_end_code", mm.mm_start_code(), mm.mm_end_code()},
                {"mm_start_data..mm_end_data", mm.mm_start_data(), mm.mm_end_data()},
                {"mm_start_brk..mm_brk", mm.mm_start_brk(), mm.mm_brk()},
                {"mm_arg_start..mm_arg_end", mm.mm_arg_start(), mm.mm_arg_end()},
                {"mm_env_start..mm_env_end", mm.mm_env_start(), mm.mm_env_end()}};
  for (const Range& r : ranges)
    if (r.lo > r.hi || r.hi > kUserTop)
      fail("image {}: {} is {:#x}..{:#x}, not a range of user space: {}", image, r.name, r.lo, r.hi,
           kRedo);
  if (mm.mm_start_stack() > kUserTop)
    fail("image {}: mm_start_stack {:#x} is beyond user space: {}", image, mm.mm_start_stack(),
         kRedo);
  if (mm.mm_saved_auxv_size() % 2 || mm.mm_saved_auxv_size() > kAuxvMax)
    fail("image {}: mm_saved_auxv has {} words (pairs of type and value, at most {}): {}", image,
         mm.mm_saved_auxv_size(), kAuxvMax, kRedo);
}

uint64_t check_page_runs(const std::vector<pagemap_entry>& runs, const std::string& image,
                         const mm_entry* mm, uint64_t limit, bool parent_ok) {
  uint64_t total = 0, prev_end = 0;
  size_t vi = 0;  // the first mapping that may hold the current run
  const size_t nvmas = mm ? static_cast<size_t>(mm->vmas_size()) : 0;
  for (size_t i = 0; i < runs.size(); i++) {
    const pagemap_entry& e = runs[i];
    const std::string what = fmt::format("image {}: entry {} ({} pages at {:#x})", image, i + 1,
                                         e.nr_pages(), e.vaddr());
    const bool in_parent = image::in_parent(e);
    // A lazy dump's pages left on the source (pages/lazy.h): no bytes in the pages image.
    const bool remote = pages::on_source(e);
    if (in_parent && !parent_ok)
      fail("{}: pages in a parent image are not supported in this image", what);
    if (e.nr_pages() == 0) fail("{}: nr_pages is 0: {}", what, kRedo);
    if (e.vaddr() % kPage) fail("{}: vaddr is not page aligned: {}", what, kRedo);
    // nr_pages is 32-bit: the length fits; the end may not.
    const uint64_t len = uint64_t{e.nr_pages()} * kPage;
    if (e.vaddr() > limit || len > limit - e.vaddr())
      fail("{}: the pages reach past {:#x}: {}", what, limit, kRedo);
    const uint64_t end = e.vaddr() + len;
    if (i > 0 && e.vaddr() < prev_end)
      fail(
          "{}: overlaps the entry before it (which ends at {:#x}) or is out of order: the pages "
          "after it would land at wrong addresses: {}",
          what, prev_end, kRedo);
    if (mm) {
      // Runs are sorted: mappings wholly below this one hold none of the next ones either.
      while (vi < nvmas && mm->vmas(static_cast<int>(vi)).end() <= e.vaddr()) vi++;
      // The run may span adjacent mappings (CRIU merges contiguous pages).
      uint64_t at = e.vaddr();
      for (size_t k = vi; at < end; k++) {
        if (k >= nvmas || mm->vmas(static_cast<int>(k)).start() > at ||
            !private_pages(mm->vmas(static_cast<int>(k))))
          fail(
              "{}: page {:#x} is not in a private mapping of the task (its mm image has none "
              "there): {}",
              what, at, kRedo);
        at = mm->vmas(static_cast<int>(k)).end();
      }
    }
    if (!in_parent && !remote) total += e.nr_pages();
    prev_end = end;
  }
  return total;
}

void check_pages_size(uint64_t pages, uint64_t file_size, const std::string& pages_image,
                      const std::string& pagemap_image) {
  uint64_t bytes;
  if (__builtin_mul_overflow(pages, kPage, &bytes) || bytes != file_size)
    fail(
        "image {} is truncated or corrupt: {} lists {} pages ({} bytes), the file holds {} "
        "bytes",
        pages_image, pagemap_image, pages, pages * kPage, file_size);
}

void check_fds(const std::vector<fdinfo_entry>& fds, const std::string& image, const Limits& lim) {
  for (size_t i = 0; i < fds.size(); i++) {
    if (fds[i].fd() >= lim.nr_open)
      fail("image {}: fd {} (file {}) is beyond fs.nr_open ({}), which no process can reach: {}",
           image, fds[i].fd(), fds[i].id(), lim.nr_open, kRedo);
    if (i > 0 && fds[i].fd() == fds[i - 1].fd())
      fail("image {}: fd {} is listed twice (files {} and {}): one would be lost: {}", image,
           fds[i].fd(), fds[i - 1].id(), fds[i].id(), kRedo);
  }
}

void check_file_entry(const file_entry& f, const Limits& lim) {
  bool has = false;
  uint32_t inner = f.id();
  const char* part = "";
  switch (f.type()) {
#define CRYO_PART(TYPE, field)       \
  case TYPE:                         \
    part = #field;                   \
    has = f.has_##field();           \
    if (has) inner = f.field().id(); \
    break;
    CRYO_PART(REG, reg)
    CRYO_PART(PIPE, pipe)
    CRYO_PART(FIFO, fifo)
    CRYO_PART(INETSK, isk)
    CRYO_PART(UNIXSK, usk)
    CRYO_PART(EVENTFD, efd)
    CRYO_PART(EVENTPOLL, epfd)
    CRYO_PART(INOTIFY, ify)
    CRYO_PART(SIGNALFD, sgfd)
    CRYO_PART(TTY, tty)
    CRYO_PART(FANOTIFY, ffy)
    CRYO_PART(EXT, ext)
    CRYO_PART(TIMERFD, tfd)
    CRYO_PART(MEMFD, memfd)
    CRYO_PART(NS, nsf)
    CRYO_PART(PIDFD, pidfd)
#undef CRYO_PART
    default:
      return;  // a kind cryo does not restore: refused where a task uses it
  }
  if (!has)
    fail("image files.img: file {} is of type {} but has no '{}' part: {}", f.id(),
         fd_types_Name(f.type()), part, kRedo);
  if (inner != f.id())
    fail("image files.img: file {} has a '{}' part with id {}: {}", f.id(), part, inner, kRedo);
  if (f.type() == EVENTPOLL)
    for (const auto& tfd : f.epfd().tfd())
      if (tfd.tfd() >= lim.nr_open)
        fail("image files.img: epoll file {} watches fd {}, beyond fs.nr_open ({}): {}", f.id(),
             tfd.tfd(), lim.nr_open, kRedo);
}

void check_creds(const creds_entry& c, const std::string& image) {
  const struct {
    const char* name;
    uint32_t v;
  } ids[] = {{"uid", c.uid()},   {"gid", c.gid()},   {"euid", c.euid()},   {"egid", c.egid()},
             {"suid", c.suid()}, {"sgid", c.sgid()}, {"fsuid", c.fsuid()}, {"fsgid", c.fsgid()}};
  for (const auto& id : ids)
    if (id.v == kNoId)
      fail(
          "image {}: creds.{} is 4294967295 (-1), which the set*id calls take as 'unchanged' "
          "(the task would keep cryo's root): {}",
          image, id.name, kRedo);
  if (c.groups_size() > kNgroupsMax)
    fail("image {}: creds.groups has {} groups, more than the kernel's {}: {}", image,
         c.groups_size(), kNgroupsMax, kRedo);
  for (int i = 0; i < c.groups_size(); i++)
    if (c.groups(i) == kNoId)
      fail("image {}: creds.groups[{}] is 4294967295 (-1), not a group: {}", image, i, kRedo);
}

void check_task_core(const task_core_entry& tc, const std::string& image) {
  // personality(0xffffffff) only asks for the current one: the task would keep cryo's.
  if (tc.personality() == kNoId)
    fail(
        "image {}: tc.personality is 0xffffffff, which the kernel takes as a query (the task "
        "would keep cryo's personality): {}",
        image, kRedo);
  constexpr int kSigactions = 64 - 2;  // every signal but SIGKILL and SIGSTOP
  if (tc.sigactions_size() > kSigactions)
    fail("image {}: tc.sigactions has {} entries, there are {} signals to set: {}", image,
         tc.sigactions_size(), kSigactions, kRedo);
}

void check_pipe_data(const pipe_data_entry& e, const std::string& image, const Limits& lim) {
  const uint64_t size = e.size() ? e.size() : kPipeDefaultSize;
  if (e.size() > lim.pipe_max_size)
    fail(
        "image {}: pipe {} has size {} bytes, more than this machine lets cryo make "
        "(fs.pipe-max-size {}; raise it or restore with CAP_SYS_RESOURCE)",
        image, e.pipe_id(), e.size(), lim.pipe_max_size);
  if (e.bytes() > size)
    fail(
        "image {}: pipe {} holds {} bytes of data, more than its size ({} bytes) can take "
        "back: {}",
        image, e.pipe_id(), e.bytes(), size, kRedo);
}

void check_socket_queue(uint32_t id, const std::vector<std::string>& msgs,
                        const std::string& image) {
  uint64_t total = 0;
  for (const std::string& m : msgs) total += m.size() + kSocketMsgOverhead;
  if (total > kSocketQueueMax)
    fail(
        "image {}: unix socket {} has {} messages queued ({} bytes with the kernel's overhead), "
        "more than cryo can put back into one socket ({} bytes): {}",
        image, id, msgs.size(), total, kSocketQueueMax, kRedo);
}

}  // namespace cryo::restore
