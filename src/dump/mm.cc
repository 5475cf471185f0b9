#include "dump/mm.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>

#include "base/error.h"
#include "base/fd.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "base/progress.h"
#include "image/image.h"
#include "kernel/syscalls.h"
#include "pagemap.pb.h"

namespace cryo::dump {
namespace {

constexpr uint64_t kPmPresent = 1ULL << 63, kPmSwap = 1ULL << 62, kPmFile = 1ULL << 61;
constexpr uint64_t kPmPfnMask = (1ULL << 55) - 1;

uint64_t madv_bits(const proc::Vma& v) {
  uint64_t m = 0;
  if (v.has_flag("dd")) m |= 1ULL << MADV_DONTDUMP;
  if (v.has_flag("dc")) m |= 1ULL << MADV_DONTFORK;
  if (v.has_flag("hg")) m |= 1ULL << MADV_HUGEPAGE;
  if (v.has_flag("nh")) m |= 1ULL << MADV_NOHUGEPAGE;
  if (v.has_flag("mg")) m |= 1ULL << MADV_MERGEABLE;
  if (v.has_flag("wf")) m |= 1ULL << MADV_WIPEONFORK;
  if (v.has_flag("rr")) m |= 1ULL << MADV_RANDOM;
  if (v.has_flag("sr")) m |= 1ULL << MADV_SEQUENTIAL;
  return m;
}

// The PFN of the shared zero page, to skip pages that were only ever read.
uint64_t zero_pfn() {
  static uint64_t pfn = [] {
    void* p = ::mmap(nullptr, kernel::kPageSize, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return ~0ULL;
    volatile char c = *static_cast<volatile char*>(p);
    (void)c;
    uint64_t e = 0;
    Fd fd(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
    if (fd) ::pread(fd.get(), &e, 8, reinterpret_cast<uint64_t>(p) / kernel::kPageSize * 8);
    ::munmap(p, kernel::kPageSize);
    uint64_t z = (e & kPmPresent) ? (e & kPmPfnMask) : ~0ULL;
    return z == 0 ? ~0ULL : z;  // PFNs hidden: do not skip anything
  }();
  return pfn;
}

// mmap flags of a VMA, as CRIU records them: how it is shared, grows down, is reserved,
// locked (MAP_LOCKED for "lo"; "lf", locked on fault, goes apart) and of which huge pages.
uint32_t map_flags(const proc::Vma& v, const std::string& map_file, const std::string& where) {
  uint32_t flags = v.shared ? MAP_SHARED : MAP_PRIVATE;
  if (v.has_flag("gd")) flags |= MAP_GROWSDOWN;
  if (v.has_flag("nr")) flags |= MAP_NORESERVE;
  if (v.has_flag("lo")) flags |= MAP_LOCKED;
  if (v.has_flag("ht")) {
    // A hugetlb mapping's file is on a hugetlbfs whose block size is the huge page size.
    struct statfs sf {};
    if (::statfs(map_file.c_str(), &sf) < 0)
      fail_sys("{}: cannot read the huge page size of this hugetlb mapping", where);
    if (sf.f_type != HUGETLBFS_MAGIC || sf.f_bsize <= 0 || (sf.f_bsize & (sf.f_bsize - 1)) != 0)
      fail("{}: a hugetlb mapping whose file is not on hugetlbfs", where);
    flags |= MAP_HUGETLB | (static_cast<uint32_t>(__builtin_ctzl(sf.f_bsize)) << MAP_HUGE_SHIFT);
  }
  return flags;
}

// The only device a mapping may be of: /dev/zero, whose private mappings keep the device as
// their file (shared ones are shared memory, "/dev/zero (deleted)"). Others are refused.
void check_device(const proc::Vma& v, const std::string& map_file, const std::string& where) {
  if (v.dev_major != 0 || v.path.rfind("/dev/", 0) != 0) return;  // devtmpfs is 0:N
  struct stat st {};
  if (::stat(map_file.c_str(), &st) < 0) fail_sys("{}: cannot stat the mapped file", where);
  if (S_ISREG(st.st_mode)) return;
  if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 5) && !v.shared) return;
  fail("{}: mappings of devices are not supported (only private ones of /dev/zero)", where);
}

}  // namespace

uint32_t mlockall_flags(RemoteTask& rt, pid_t pid) {
  // mm->def_flags shows nowhere in /proc: a page mapped now in the task is locked if
  // MCL_FUTURE is in force (madvise(MADV_DONTNEED) refuses locked memory with EINVAL), and
  // populated at once unless MCL_ONFAULT came with it. MAP_NORESERVE: not charged to a strict
  // commit limit. (If cryo dies before the munmap, the task keeps one more page.)
  long at = rt.syscall(SYS_mmap, {0, kernel::kPageSize, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, ~0ULL, 0});
  if (at == -EAGAIN) return MCL_FUTURE;  // locked: over the task's RLIMIT_MEMLOCK
  if (at < 0 && at > -4096)
    fail_errno(static_cast<int>(-at),
               "task {}: cannot map a page in it to tell whether mlockall(MCL_FUTURE) is in "
               "force (at its limit of mappings, vm.max_map_count?)",
               pid);
  const auto page = static_cast<uint64_t>(at);
  uint64_t pme = 0;
  long advice = 0;
  try {
    Fd pagemap(::open(fmt::format("/proc/{}/pagemap", pid).c_str(), O_RDONLY | O_CLOEXEC));
    if (!pagemap ||
        ::pread(pagemap.get(), &pme, 8, static_cast<off_t>(page / kernel::kPageSize * 8)) != 8)
      fail_sys("cannot read /proc/{}/pagemap", pid);
    advice = rt.syscall(SYS_madvise, {page, kernel::kPageSize, MADV_DONTNEED});
  } catch (...) {
    rt.syscall(SYS_munmap, {page, kernel::kPageSize});
    throw;
  }
  rt.check("munmap", SYS_munmap, {page, kernel::kPageSize});
  if (advice == 0) return 0;
  if (advice != -EINVAL)
    fail_errno(static_cast<int>(-advice), "task {}: madvise of a page it was given", pid);
  return MCL_FUTURE | ((pme & kPmPresent) ? 0 : MCL_ONFAULT);
}

mm_entry collect_mm(pid_t pid, uint64_t brk, FileTable& files, ShmemTable& shmem) {
  proc::Stat st = proc::read_stat(pid);
  mm_entry mm;
  mm.set_mm_start_code(st.startcode);
  mm.set_mm_end_code(st.endcode);
  mm.set_mm_start_data(st.start_data);
  mm.set_mm_end_data(st.end_data);
  mm.set_mm_start_stack(st.startstack);
  mm.set_mm_start_brk(st.start_brk);
  mm.set_mm_brk(brk);
  mm.set_mm_arg_start(st.arg_start);
  mm.set_mm_arg_end(st.arg_end);
  mm.set_mm_env_start(st.env_start);
  mm.set_mm_env_end(st.env_end);

  std::string exe = proc::read_link(fmt::format("/proc/{}/exe", pid));
  mm.set_exe_file_id(files.by_path(exe, O_RDONLY, fmt::format("/proc/{}/exe", pid)));

  std::string auxv = proc::read_file(fmt::format("/proc/{}/auxv", pid));
  for (size_t i = 0; i + 8 <= auxv.size(); i += 8) {
    uint64_t v;
    std::memcpy(&v, auxv.data() + i, 8);
    mm.add_mm_saved_auxv(v);
  }

  for (const proc::Vma& v : proc::read_smaps(pid)) {
    vma_entry* e = mm.add_vmas();
    e->set_start(v.start);
    e->set_end(v.end);
    e->set_pgoff(v.pgoff);
    e->set_shmid(0);
    e->set_prot((v.r ? PROT_READ : 0) | (v.w ? PROT_WRITE : 0) | (v.x ? PROT_EXEC : 0));
    auto where = [&] {
      return fmt::format("task {} mapping {:x}-{:x} {}", pid, v.start, v.end, v.path);
    };
    std::string map_file = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, v.start, v.end);
    uint32_t flags = map_flags(v, map_file, where());
    if (v.has_flag("lf")) e->set_cryo_lock_onfault(true);
    if (!v.shared && !v.w && v.has_flag("ac")) e->set_cryo_accounted(true);
    e->set_fd(-1);
    // As CRIU, for every mapping: how its file would be opened ("mw": may be made writable).
    e->set_fdflags((v.shared && (v.w || v.has_flag("mw"))) ? O_RDWR : O_RDONLY);
    if (uint64_t m = madv_bits(v)) e->set_madv(m);
    uint32_t status = image::kVmaRegular;
    // Anonymous hugetlb memory is a file of an internal hugetlbfs mount; shared anonymous
    // memory shows as /dev/zero, as a shared mapping of /dev/zero itself does.
    const bool anon_huge = v.path == "/anon_hugepage (deleted)" && v.has_flag("ht");
    if (v.path == "[vdso]") {
      status |= image::kVmaVdso;
      flags |= MAP_ANONYMOUS;
    } else if (v.path == "[vvar]" || v.path == "[vvar_vclock]") {
      status |= image::kVmaVvar;
      flags |= MAP_ANONYMOUS;
    } else if (v.path == "[vsyscall]") {
      status = image::kVmaVsyscall;
      flags |= MAP_ANONYMOUS;
    } else if (v.shared && (v.path.empty() || v.path == "/dev/zero (deleted)" || anon_huge)) {
      status |= image::kVmaAnonShared;
      flags |= MAP_ANONYMOUS;
      e->set_shmid(v.inode);
      shmem.add(pid, v.inode, v.start, v.end);
    } else if (anon_huge) {
      status |= image::kVmaAnonPrivate;
      flags |= MAP_ANONYMOUS;
    } else if (v.path.empty() || v.path == "[heap]" || v.path == "[stack]") {
      status |= image::kVmaAnonPrivate;
      if (v.path == "[heap]") status |= image::kVmaHeap;
      if (v.path == "[stack]") status |= image::kVmaStack;
      flags |= MAP_ANONYMOUS;
    } else if (v.path[0] == '[') {
      fail("{}: this kind of mapping is not supported yet", where());
    } else if (v.path.rfind("socket:[", 0) == 0) {
      // A packet socket's ring (the only socket the kernel lets map): the socket's file id, by
      // an fd of the task on it; its frames are traffic, not saved.
      status |= image::kVmaSocket;
      e->set_shmid(files.mapped_socket(pid, v.path, where()));
    } else if (v.path.rfind("anon_inode:", 0) == 0) {
      // Not a path (io_uring rings, perf or bpf buffers): only the object behind it could be
      // mapped again.
      fail("{}: a mapping of {} is not supported yet", where(), v.path.substr(11));
    } else {
      if (v.path.rfind("/SYSV", 0) == 0)
        fail("{}: SysV shared memory is not supported yet", where());
      if (v.path.rfind("/dev/zero (deleted)", 0) == 0)
        fail("{}: a private mapping of shared memory (through map_files) is not supported",
             where());
      if (v.has_flag("io") || v.has_flag("pf"))
        fail("{}: device (I/O) mappings are not supported", where());
      check_device(v, map_file, where());
      status |= v.shared ? image::kVmaFileShared : image::kVmaFilePrivate;
      // "mw": the mapping may be made writable later, so the file was open for writing.
      uint32_t oflags = (v.shared && (v.w || v.has_flag("mw"))) ? O_RDWR : O_RDONLY;
      if (v.path.rfind("/memfd:", 0) == 0) {
        status |= image::kVmaMemfd;
        e->set_shmid(files.memfd_mapping(pid, map_file, v.path, oflags));
      } else {
        e->set_shmid(files.by_path(v.path, oflags, map_file));
      }
    }
    e->set_flags(flags);
    e->set_status(status);
  }
  return mm;
}

PageStats dump_pages(pid_t pid, const mm_entry& mm, const std::string& dir, uint32_t pages_id) {
  using clock = std::chrono::steady_clock;
  PageStats stats;
  Fd pagemap(::open(fmt::format("/proc/{}/pagemap", pid).c_str(), O_RDONLY | O_CLOEXEC));
  if (!pagemap) fail_sys("cannot open /proc/{}/pagemap", pid);
  Fd mem(::open(fmt::format("/proc/{}/mem", pid).c_str(), O_RDONLY | O_CLOEXEC));
  if (!mem) fail_sys("cannot open /proc/{}/mem", pid);

  std::string pages_name = fmt::format("pages-{}.img", pages_id);
  Fd out = image::create_raw(dir, pages_name);
  image::Writer pm(dir, fmt::format("pagemap-{}.img", pid), image::magic::kPagemap);
  pagemap_head head;
  head.set_pages_id(pages_id);
  pm.put(head);

  const uint64_t zpfn = zero_pfn();
  constexpr size_t kBuf = 16 << 20;
  std::vector<char> buf(kBuf);
  size_t used = 0, pending = 0;  // bytes in buf; bytes queued in `remote`
  std::vector<iovec> remote;
  // The image is written by a second thread while the next buffer is read from the task.
  std::vector<char> spare(kBuf);
  std::future<void> inflight;
  auto wait_write = [&] {
    if (!inflight.valid()) return;
    auto t0 = clock::now();
    inflight.get();
    stats.write_seconds += std::chrono::duration<double>(clock::now() - t0).count();
  };
  auto flush_buf = [&] {
    wait_write();
    std::swap(buf, spare);
    size_t len = used;
    used = 0;
    const int fd = out.get();
    const char* data = spare.data();
    inflight = std::async(std::launch::async, [fd, data, len, &dir, &pages_name] {
      size_t off = 0;
      while (off < len) {
        ssize_t n = ::write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail_sys("cannot write image {}/{}", dir, pages_name);
        off += static_cast<size_t>(n);
      }
    });
  };
  auto read_batch = [&](bool readable) {
    if (remote.empty()) return;
    interrupt_point();
    auto t0 = clock::now();
    size_t total = 0;
    for (auto& r : remote) total += r.iov_len;
    char* dst = buf.data() + used;
    if (readable) {
      size_t done = 0;
      size_t i = 0;
      while (i < remote.size()) {
        size_t cnt = std::min<size_t>(remote.size() - i, IOV_MAX);
        size_t want = 0;
        for (size_t k = i; k < i + cnt; k++) want += remote[k].iov_len;
        iovec local{dst + done, want};
        ssize_t n = ::process_vm_readv(pid, &local, 1, &remote[i], cnt, 0);
        if (n != static_cast<ssize_t>(want))
          fail_sys("cannot read the memory of task {} at {:#x}", pid,
                   reinterpret_cast<uint64_t>(remote[i].iov_base));
        done += want;
        i += cnt;
      }
    } else {
      size_t done = 0;
      for (auto& r : remote) {
        ssize_t n = ::pread(mem.get(), dst + done, r.iov_len,
                            static_cast<off_t>(reinterpret_cast<uint64_t>(r.iov_base)));
        if (n != static_cast<ssize_t>(r.iov_len))
          fail_sys("cannot read the memory of task {} at {:#x}", pid,
                   reinterpret_cast<uint64_t>(r.iov_base));
        done += n;
      }
    }
    used += total;
    remote.clear();
    pending = 0;
    progress::add_done(total / kernel::kPageSize);
    stats.read_seconds += std::chrono::duration<double>(clock::now() - t0).count();
  };

  std::vector<uint64_t> pme;
  for (const vma_entry& v : mm.vmas()) {
    if (!(v.status() & (image::kVmaAnonPrivate | image::kVmaFilePrivate))) continue;
    bool file = v.status() & image::kVmaFilePrivate;
    bool readable = v.prot() & PROT_READ;
    uint64_t npages = (v.end() - v.start()) / kernel::kPageSize;
    stats.scanned += npages;
    // Read the pagemap in windows to bound memory on huge sparse areas.
    constexpr uint64_t kWin = 1 << 16;
    for (uint64_t w0 = 0; w0 < npages; w0 += kWin) {
      uint64_t wn = std::min(kWin, npages - w0);
      pme.resize(wn);
      uint64_t first = v.start() / kernel::kPageSize + w0;
      ssize_t n = ::pread(pagemap.get(), pme.data(), wn * 8, first * 8);
      if (n != static_cast<ssize_t>(wn * 8))
        fail_sys("cannot read /proc/{}/pagemap at {:#x}", pid, first * kernel::kPageSize);
      uint64_t i = 0;
      while (i < wn) {
        auto wanted = [&](uint64_t e) {
          if (e & kPmSwap) return true;
          if (!(e & kPmPresent)) return false;
          if (file && (e & kPmFile)) return false;  // still the file's page cache page
          if ((e & kPmPfnMask) == zpfn) return false;
          return true;
        };
        if (!wanted(pme[i])) {
          i++;
          continue;
        }
        uint64_t j = i + 1;
        while (j < wn && wanted(pme[j])) j++;
        uint64_t addr = (first + i) * kernel::kPageSize;
        uint64_t len = (j - i) * kernel::kPageSize;
        pagemap_entry e;
        e.set_vaddr(addr);
        e.set_nr_pages(static_cast<uint32_t>(j - i));
        e.set_flags(image::kPePresent);
        pm.put(e);
        stats.written += j - i;
        // Split the run into buffer-sized pieces.
        uint64_t off = 0;
        while (off < len) {
          size_t room = kBuf - used - pending;
          if (room == 0) {
            read_batch(readable);
            flush_buf();
            continue;
          }
          uint64_t take = std::min<uint64_t>(room, len - off);
          remote.push_back({reinterpret_cast<void*>(addr + off), take});
          pending += take;
          off += take;
        }
        i = j;
      }
    }
    read_batch(readable);
  }
  flush_buf();
  wait_write();
  pm.close();
  log::info("task {}: {} pages scanned, {} dumped", pid, stats.scanned, stats.written);
  return stats;
}

}  // namespace cryo::dump
