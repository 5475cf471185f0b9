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

#include <cstring>

#include "base/error.h"
#include "base/fd.h"
#include "dump/sysv_shm.h"
#include "image/image.h"
#include "kernel/syscalls.h"

namespace cryo::dump {
namespace {

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

uint64_t fresh_page_entry(pid_t pid, uint64_t page) {
  uint64_t pme = 0;
  Fd pagemap(::open(fmt::format("/proc/{}/pagemap", pid).c_str(), O_RDONLY | O_CLOEXEC));
  if (!pagemap ||
      ::pread(pagemap.get(), &pme, 8, static_cast<off_t>(page / kernel::kPageSize * 8)) != 8)
    fail_sys("cannot read /proc/{}/pagemap", pid);
  return pme;
}

uint32_t mlockall_from_fresh_page(pid_t pid, uint64_t pme, long advice) {
  if (advice == 0) return 0;
  if (advice != -EINVAL)
    fail_errno(static_cast<int>(-advice), "task {}: madvise of a page it was given", pid);
  return MCL_FUTURE | ((pme & kernel::kPmPresent) ? 0 : MCL_ONFAULT);
}

uint32_t mlockall_flags(RemoteTask& rt, pid_t pid) {
  // MAP_NORESERVE: not charged to a strict commit limit. (If cryo dies before the munmap, the
  // task keeps one more page.)
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
    pme = fresh_page_entry(pid, page);
    advice = rt.syscall(SYS_madvise, {page, kernel::kPageSize, MADV_DONTNEED});
  } catch (...) {
    rt.syscall(SYS_munmap, {page, kernel::kPageSize});
    throw;
  }
  rt.check("munmap", SYS_munmap, {page, kernel::kPageSize});
  return mlockall_from_fresh_page(pid, pme, advice);
}

mm_entry collect_mm(const FrozenTask& t, uint64_t brk, FileTable& files, ShmemTable& shmem) {
  const pid_t pid = t.pid;
  const proc::Stat& st = t.stat;
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
    } else if (is_sysv_attachment(v)) {
      // A SysV segment attached by shmat: the segment is dumped once (dump/sysv_shm.*).
      if (v.has_flag("ht"))
        fail("{}: SysV shared memory in huge pages is not supported yet", where());
      status |= image::kVmaAnonShared | image::kVmaSysvipc;
      flags |= MAP_ANONYMOUS;
      e->set_shmid(v.inode);  // the segment's id
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

}  // namespace cryo::dump
