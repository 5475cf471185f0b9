#include "restore/mm.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <map>
#include <optional>
#include <thread>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "base/progress.h"
#include "base/strings.h"
#include "image/image.h"
#include "infect/fd_transfer.h"
#include "infect/gadgets.h"
#include "infect/remote_batch.h"
#include "kernel/syscalls.h"
#include "proc/proc.h"
#include "restore/lazy.h"
#include "restore/sysv_shm.h"
#include "restore/tree.h"

namespace cryo::restore {
namespace {

constexpr uint64_t kScratchLen = 64 * 1024;
constexpr uint64_t kBatchLen = 256 * 1024;
constexpr uint64_t kTaskSizeMax = 0x800000000000ULL;

bool is_special(const vma_entry& v) {
  return v.status() & (image::kVmaVdso | image::kVmaVvar | image::kVmaVsyscall);
}

// Opens file `r` in the task without blocking and checks its kind against the image: a FIFO
// put where a mapped file was would otherwise block the task's open, and cryo with it. The fd
// only serves mmap or PR_SET_MM_MAP, so O_NONBLOCK stays.
uint64_t open_in_task(RemoteTask& rt, const reg_file_entry& r, uint64_t flags, const char* what) {
  const pid_t pid = rt.tid();
  long fd = rt.syscall(SYS_openat, {static_cast<uint64_t>(AT_FDCWD), rt.put_str(0, r.name()),
                                    flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0});
  if (fd < 0)
    fail_errno(static_cast<int>(-fd), "task {}: cannot open {} {}", pid, what, printable(r.name()));
  struct stat st {};
  uint64_t a = rt.put(1024, &st, sizeof st);
  long err = rt.syscall(SYS_fstat, {static_cast<uint64_t>(fd), a});
  if (err < 0)
    fail_errno(static_cast<int>(-err), "task {}: cannot stat {}", pid, printable(r.name()));
  rt.read_mem(a, &st, sizeof st);
  if (r.has_mode() ? (st.st_mode & S_IFMT) != (r.mode() & S_IFMT) : !S_ISREG(st.st_mode))
    fail("task {} {}: {} is now {}, it was {} when dumped: restore needs the same file", pid, what,
         printable(r.name()), file_kind(st.st_mode),
         r.has_mode() ? file_kind(r.mode()) : "a regular file");
  return static_cast<uint64_t>(fd);
}

using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;  // [start, end), sorted

// A mapping the task got from its parent by fork and keeps as it is: the same range of the
// same object with the same flags and advice in both images. Not MADV_DONTFORK ones (a child
// does not get them) nor MADV_WIPEONFORK ones (a child gets zeros), nor huge pages (their
// unit is not a page) or packet rings.
bool inherited(const vma_entry& c, const vma_entry& p) {
  constexpr uint64_t kNotCopied = (1ULL << MADV_DONTFORK) | (1ULL << MADV_WIPEONFORK);
  return c.start() == p.start() && c.end() == p.end() && c.pgoff() == p.pgoff() &&
         c.shmid() == p.shmid() && c.flags() == p.flags() && c.status() == p.status() &&
         c.madv() == p.madv() && !(p.madv() & kNotCopied) && !(p.flags() & MAP_HUGETLB) &&
         !is_special(p) && !(p.status() & image::kVmaSocket);
}

// Whether `addr` lies in one of `r`.
bool contains(const Ranges& r, uint64_t addr) {
  auto it = std::upper_bound(r.begin(), r.end(), std::pair<uint64_t, uint64_t>(addr, UINT64_MAX));
  return it != r.begin() && addr < std::prev(it)->second;
}

// The pages of a task's images by address, with where each one's bytes are.
class PageIndex {
 public:
  explicit PageIndex(const PageChain& chain) : PageIndex(chain.runs()) {}
  explicit PageIndex(const std::vector<PageChain::Run>& runs) {
    for (const auto& r : runs) runs_.push_back({r.vaddr, r.vaddr + r.len, r.data});
  }
  // The image's copy of the page at `addr`, or nullptr when the image has none.
  const char* find(uint64_t addr) const {
    auto it = std::upper_bound(runs_.begin(), runs_.end(), addr,
                               [](uint64_t a, const Run& r) { return a < r.start; });
    if (it == runs_.begin() || addr >= std::prev(it)->end) return nullptr;
    --it;
    return it->data + (addr - it->start);
  }
  Ranges ranges() const {
    Ranges r;
    for (const Run& run : runs_) r.emplace_back(run.start, run.end);
    return r;
  }

 private:
  struct Run {
    uint64_t start, end;
    const char* data;
  };
  std::vector<Run> runs_;
};

// Locks a VMA as it was locked: at once (its pages all present), or on fault. The kernel
// marks a PROT_NONE area locked but cannot populate it: that ENOMEM is the original's too.
void lock_vma(RemoteTask& rt, const vma_entry& v) {
  const uint64_t how = v.cryo_lock_onfault() ? MLOCK_ONFAULT : 0;
  long r = rt.syscall(SYS_mlock2, {v.start(), v.end() - v.start(), how});
  if (r == -ENOMEM && v.prot() == PROT_NONE) return;
  if (r < 0)
    fail_errno(static_cast<int>(-r), "task {}: cannot lock mapping {:#x}-{:#x} again", rt.tid(),
               v.start(), v.end());
}

// Two neighbours the kernel would merge into one VMA, though the dumped task had them apart
// (hidden state kept them so: the anon_vma each got when a fork copied them, or a page offset
// left by mremap). Only anonymous private ones are kept apart (see map_apart).
bool mergeable(const vma_entry& a, const vma_entry& b) {
  constexpr uint32_t kKind = image::kVmaAnonPrivate | image::kVmaFilePrivate |
                             image::kVmaFileShared | image::kVmaAnonShared;
  return a.end() == b.start() && (b.status() & kKind) == image::kVmaAnonPrivate &&
         (a.status() & kKind) == image::kVmaAnonPrivate && a.prot() == b.prot() &&
         a.flags() == b.flags() && a.madv() == b.madv() &&
         a.cryo_lock_onfault() == b.cryo_lock_onfault() &&
         !(b.flags() & (MAP_GROWSDOWN | image::kVmaHugetlbFlags));
}

// Anonymous VMAs given the kernel state the dumped ones had, which no flag shows: an anon_vma
// (that a fault gives), and a page offset not following their neighbour's.
class AnonState {
 public:
  explicit AnonState(RemoteTask& rt) : rt_(rt) {}

  // Faults in a page at `addr` and drops it: the VMA keeps the anon_vma it got. Through
  // /proc/PID/mem, which writes whatever the protection (a writable mapping, even for a
  // moment, would be charged to the commit limit: VmFlags "ac").
  void give_anon_vma(uint64_t addr) {
    if (!mem_) {
      mem_ = Fd(::open(fmt::format("/proc/{}/mem", rt_.tid()).c_str(), O_RDWR | O_CLOEXEC));
      if (!mem_) fail_sys("cannot open /proc/{}/mem", rt_.tid());
    }
    const char zero = 0;
    if (::pwrite(mem_.get(), &zero, 1, static_cast<off_t>(addr)) != 1)
      fail_sys("cannot write to task {} at {:#x}", rt_.tid(), addr);
    rt_.check("madvise(MADV_DONTNEED)", SYS_madvise, {addr, kernel::kPageSize, MADV_DONTNEED});
  }

  // Maps `v` elsewhere and moves it to its address: its page offset is then not the one that
  // follows its neighbour's, so the kernel never merges the two (it would now, or when
  // mprotect, madvise or mlock change them later), and they stay two VMAs as dumped. mremap
  // keeps the offset of a VMA that has an anon_vma only (one never faulted takes its new
  // address's, to merge).
  void map_apart(const vma_entry& v, uint64_t prot, uint64_t flags,
                 std::vector<std::pair<uint64_t, uint64_t>>& busy) {
    const uint64_t len = v.end() - v.start();
    if (len > len_) {  // one place for all, as large as the largest
      len_ = len;
      at_ = pick_free(busy, len);
      busy.emplace_back(at_, at_ + len);
    }
    log::debug("task {}: {:#x}-{:#x} made apart from its neighbour", rt_.tid(), v.start(), v.end());
    rt_.check("mmap", SYS_mmap, {at_, len, prot, flags, ~0ULL, 0});
    give_anon_vma(at_);
    uint64_t got =
        rt_.check("mremap", SYS_mremap, {at_, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, v.start()});
    if (got != v.start()) fail("task {}: mremap placed {:#x} at {:#x}", rt_.tid(), v.start(), got);
  }

 private:
  RemoteTask& rt_;
  Fd mem_;  // /proc/PID/mem of the task
  uint64_t at_ = 0, len_ = 0;
};

// The parts of sorted ranges `a` that are in `within` and not in `minus` (both sorted).
Ranges clip(const Ranges& a, const Ranges& within, const Ranges& minus) {
  Ranges out;
  for (auto [s, e] : a)
    for (const auto& [ws, we] : within) {
      uint64_t lo = std::max(s, ws), hi = std::min(e, we);
      if (lo >= hi) continue;
      for (const auto& [ms, me] : minus) {
        if (me <= lo || ms >= hi) continue;
        if (ms > lo) out.emplace_back(lo, ms);
        lo = std::max(lo, me);
        if (lo >= hi) break;
      }
      if (lo < hi) out.emplace_back(lo, hi);
    }
  return out;
}

// cryo's own vDSO block (the vDSO and its data pages), inherited by the new task, put where
// the dumped process had it, keeping the parts' relative layout. Parts the dumped process had
// unmapped go; a vDSO it had unmapped is parked at a free place instead, as cryo's syscalls
// run from it, until the tree stands (drop_parked_vdso).
class VdsoBlock {
 public:
  VdsoBlock(RemoteTask& rt, const std::vector<proc::Vma>& now, const mm_entry& mm);
  bool contains(const proc::Vma& v) const {
    return std::any_of(cur_.begin(), cur_.end(),
                       [&](const Part& p) { return p.start == v.start && p.end == v.end; });
  }
  // Moves the block; `busy` holds every range in use or to be used, and gets the parked one.
  void place(std::vector<std::pair<uint64_t, uint64_t>>& busy);
  // Runs the task's syscalls from its own code and unmaps a parked vDSO.
  uint64_t parked() const { return parked_; }
  uint64_t parked_len() const { return parked_len_; }

 private:
  struct Part {
    uint64_t start, end;
    bool vdso;
    bool kept = false;  // the dumped process has it, at start + delta_
  };
  static bool is_part(const std::string& path) {
    return path == "[vdso]" || path == "[vvar]" || path == "[vvar_vclock]";
  }
  RemoteTask& rt_;
  std::vector<Part> cur_;
  int64_t delta_ = 0;
  uint64_t parked_ = 0, parked_len_ = 0;
};

VdsoBlock::VdsoBlock(RemoteTask& rt, const std::vector<proc::Vma>& now, const mm_entry& mm)
    : rt_(rt) {
  const pid_t pid = rt.tid();
  for (const auto& v : now)
    if (is_part(v.path)) cur_.push_back({v.start, v.end, v.path == "[vdso]"});
  if (std::none_of(cur_.begin(), cur_.end(), [](const Part& p) { return p.vdso; }))
    fail("task {}: cryo's own process has no vDSO", pid);
  std::vector<Part> want;
  for (const auto& v : mm.vmas())
    if (v.status() & (image::kVmaVdso | image::kVmaVvar))
      want.push_back({v.start(), v.end(), (v.status() & image::kVmaVdso) != 0});
  if (want.empty()) {
    log::info("task {}: had no vDSO when dumped: cryo's is parked until its code is in place", pid);
    return;
  }
  // The one shift that puts a part of cryo's block on each dumped part, same kind and size.
  auto same = [](const Part& a, const Part& b) {
    return a.vdso == b.vdso && a.end - a.start == b.end - b.start;
  };
  for (const Part& anchor : cur_) {
    if (!same(anchor, want[0])) continue;
    const int64_t delta = static_cast<int64_t>(want[0].start - anchor.start);
    for (Part& p : cur_) p.kept = false;
    bool all = true;
    for (const Part& w : want) {
      auto it = std::find_if(cur_.begin(), cur_.end(), [&](const Part& p) {
        return !p.kept && same(p, w) && p.start + static_cast<uint64_t>(delta) == w.start;
      });
      if (it == cur_.end()) {
        all = false;
        break;
      }
      it->kept = true;
    }
    if (all) {
      delta_ = delta;
      return;
    }
  }
  fail(
      "task {}: the vDSO of this kernel differs from the dumped one (dumped on another "
      "kernel?): not supported yet",
      pid);
}

void VdsoBlock::place(std::vector<std::pair<uint64_t, uint64_t>>& busy) {
  auto vdso = std::find_if(cur_.begin(), cur_.end(), [](const Part& p) { return p.vdso; });
  const uint64_t gadget_off = rt_.gadget() - vdso->start;
  if (rt_.gadget() < vdso->start || gadget_off >= vdso->end - vdso->start)
    fail("task {}: cryo's syscall instruction is not in its vDSO", rt_.tid());
  // Data pages the dumped process had unmapped go now; they serve nothing.
  for (const Part& p : cur_)
    if (!p.kept && !p.vdso) rt_.check("munmap", SYS_munmap, {p.start, p.end - p.start});
  if (vdso->kept && delta_ == 0) return;
  // Through a temporary place, as the final block may overlap the current one.
  uint64_t lo = ~0ULL, hi = 0;
  for (const Part& p : cur_)
    if (p.kept || p.vdso) lo = std::min(lo, p.start), hi = std::max(hi, p.end);
  const uint64_t tmp = pick_free(busy, hi - lo);
  busy.emplace_back(tmp, tmp + (hi - lo));
  for (const Part& p : cur_)
    if (p.kept || p.vdso)
      rt_.check("mremap of the vDSO", SYS_mremap,
                {p.start, p.end - p.start, p.end - p.start, MREMAP_MAYMOVE | MREMAP_FIXED,
                 tmp + (p.start - lo)});
  rt_.set_gadget(tmp + (vdso->start - lo) + gadget_off);
  for (const Part& p : cur_)
    if (p.kept)
      rt_.check("mremap of the vDSO", SYS_mremap,
                {tmp + (p.start - lo), p.end - p.start, p.end - p.start,
                 MREMAP_MAYMOVE | MREMAP_FIXED, p.start + static_cast<uint64_t>(delta_)});
  if (vdso->kept) {
    rt_.set_gadget(vdso->start + static_cast<uint64_t>(delta_) + gadget_off);
  } else {
    parked_ = tmp + (vdso->start - lo);
    parked_len_ = vdso->end - vdso->start;
  }
}

}  // namespace

void drop_parked_vdso(RemoteTask& rt, uint64_t start, uint64_t len) {
  if (!start) return;
  const pid_t pid = rt.tid();
  uint64_t gadget = 0;
  try {
    gadget = find_syscall_gadget(pid, /*from_vdso=*/false);
  } catch (const Error&) {
    fail(
        "task {}: the dumped process had no vDSO and its code has no syscall instruction "
        "cryo could run its calls with",
        pid);
  }
  rt.set_gadget(gadget);
  rt.check("munmap of cryo's vDSO", SYS_munmap, {start, len});
  log::debug("task {}: cryo's vDSO unmapped, syscalls run at {:#x} from now on", pid, gadget);
}

MmPages restore_mm(RemoteTask& rt, const TaskPlan& t, const Plan& plan, ShmemSet& shmem,
                   FileSet& files, const TaskPlan* parent) {
  const pid_t pid = t.pid();
  const mm_entry& mm = t.mm;

  // What the task keeps of its parent's address space (both VMA lists are sorted).
  std::vector<bool> keep(mm.vmas_size(), false);
  std::vector<uint32_t> keep_prot(mm.vmas_size(), 0);  // as the parent has it
  Ranges kept;
  if (parent) {
    const auto& pv = parent->mm.vmas();
    int k = 0;
    for (int i = 0; i < mm.vmas_size(); i++) {
      const vma_entry& v = mm.vmas(i);
      while (k < pv.size() && pv[k].end() <= v.start()) k++;
      if (k < pv.size() && inherited(v, pv[k])) {
        keep[i] = true;
        keep_prot[i] = pv[k].prot();
        kept.emplace_back(v.start(), v.end());
      }
    }
  }

  // cryo's own rseq registration would make the kernel write into memory about to vanish.
  kernel::RseqConfig rc{};
  if (ptrace(static_cast<__ptrace_request>(PTRACE_GET_RSEQ_CONFIGURATION), pid, sizeof rc, &rc) >
          0 &&
      rc.rseq_abi_pointer)
    rt.check("rseq unregister", SYS_rseq, {rc.rseq_abi_pointer, rc.rseq_abi_size, 1, rc.signature});
  rt.check("close_range", SYS_close_range, {0, ~0U, 0});

  // Current layout: cryo's copy. Keep only the vDSO block.
  std::vector<proc::Vma> now = proc::read_maps(pid);
  VdsoBlock vdso(rt, now, mm);

  std::vector<std::pair<uint64_t, uint64_t>> busy;
  for (const auto& v : mm.vmas())
    if (v.end() <= kTaskSizeMax) busy.emplace_back(v.start(), v.end());
  for (const auto& v : now)
    if (vdso.contains(v)) busy.emplace_back(v.start, v.end);
  uint64_t old_scratch = rt.scratch();
  Ranges gone;
  for (const auto& v : now) {
    if (v.start >= kTaskSizeMax) continue;
    if (vdso.contains(v)) continue;
    gone.emplace_back(v.start, v.end);
  }
  for (const auto& [s, e] : clip(gone, {{0, kTaskSizeMax}}, kept))
    rt.check("munmap", SYS_munmap, {s, e - s});
  if (old_scratch) rt.adopt_scratch(0, 0);
  uint64_t scratch = rt.map_scratch(kScratchLen, pick_free(busy, kScratchLen));
  busy.emplace_back(scratch, scratch + kScratchLen);
  vdso.place(busy);

  // The pages to write, as runs with where their bytes are in the images. A page of a kept
  // mapping equal to the parent's (what the task inherited) is not written: it stays shared.
  struct Run {
    uint64_t vaddr, len;
    const char* src;
  };
  std::vector<Run> runs;
  uint64_t inherited_pages = 0, compared = 0;
  if (t.page_chain && !t.page_chain->runs().empty()) {
    PageIndex mine(*t.page_chain);
    std::optional<PageIndex> theirs;
    if (!kept.empty() && parent->page_chain && !parent->page_chain->runs().empty()) {
      // A lazy restore left the parent's lazy pages out: the child did not inherit them.
      if (plan.lazy_pages)
        theirs.emplace(eager_runs(*parent->page_chain, parent->mm));
      else
        theirs.emplace(*parent->page_chain);
    }
    // --lazy-pages: the lazy mappings' pages are the daemon's to fill (restore/lazy.h).
    const std::vector<PageChain::Run> eager =
        plan.lazy_pages ? eager_runs(*t.page_chain, mm) : std::vector<PageChain::Run>{};
    for (const auto& p : plan.lazy_pages ? eager : t.page_chain->runs()) {
      if (!theirs || !contains(kept, p.vaddr)) {
        runs.push_back({p.vaddr, p.len, p.data});
        continue;
      }
      for (uint64_t at = 0; at < p.len; at += kernel::kPageSize) {
        const char* old = theirs->find(p.vaddr + at);
        compared += old != nullptr;
        if (old && std::memcmp(old, p.data + at, kernel::kPageSize) == 0) {
          inherited_pages++;
          continue;
        }
        if (at && !runs.empty() && runs.back().vaddr + runs.back().len == p.vaddr + at)
          runs.back().len += kernel::kPageSize;
        else
          runs.push_back({p.vaddr + at, kernel::kPageSize, p.data + at});
      }
    }
    // Pages the parent had where this task has none: gone back to zero (or to the file).
    if (theirs)
      for (const auto& [s, e] : clip(theirs->ranges(), kept, mine.ranges()))
        rt.check("madvise(MADV_DONTNEED)", SYS_madvise, {s, e - s, MADV_DONTNEED});
    progress::add_done(inherited_pages);
  }
  // Which VMAs get pages: they are mapped writable until filled.
  std::vector<bool> fill(mm.vmas_size(), false);
  {
    size_t vi = 0;
    for (const Run& r : runs) {
      while (vi < static_cast<size_t>(mm.vmas_size()) && mm.vmas(vi).end() <= r.vaddr) vi++;
      uint64_t end = r.vaddr + r.len;
      for (size_t k = vi; k < static_cast<size_t>(mm.vmas_size()) && mm.vmas(k).start() < end; k++)
        fill[k] = true;
    }
  }

  // Plain mmaps and mprotects go in batches: a task may have tens of thousands of VMAs.
  RemoteBatch batch(rt, pick_free(busy, kBatchLen), kBatchLen);
  busy.emplace_back(batch.start(), batch.start() + batch.size());
  std::map<uint64_t, long> file_fds;  // shmid -> fd in the task
  AnonState anon(rt);
  // Protections as mapped: VMAs that get pages are writable until filled, and one that was
  // writable once is so for a moment (to be charged as it was).
  std::vector<uint64_t> as_mapped(mm.vmas_size());
  for (int i = 0; i < mm.vmas_size(); i++) {
    const vma_entry& v = mm.vmas(i);
    if (is_special(v)) continue;
    uint64_t prot = v.prot();
    if (fill[i]) prot |= PROT_READ | PROT_WRITE;
    if (keep[i]) {
      if (prot != keep_prot[i])
        batch.add(SYS_mprotect, {v.start(), v.end() - v.start(), prot},
                  fmt::format("mprotect of {:#x}", v.start()));
      as_mapped[i] = prot;
      continue;
    }
    if (v.cryo_accounted()) prot |= PROT_WRITE;
    as_mapped[i] = prot;
    uint64_t flags =
        (v.flags() & (MAP_SHARED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_NORESERVE)) |
        MAP_FIXED;
    // Anonymous huge pages; a file of huge pages says their size itself.
    if (flags & MAP_ANONYMOUS) flags |= v.flags() & image::kVmaHugetlbFlags;
    long fd = -1;
    if (v.status() & image::kVmaSysvipc) {
      attach_sysv_shm(rt, v, busy);
      continue;
    }
    if (v.status() & image::kVmaAnonShared) {
      fd = shmem.open(rt, v.shmid(), busy);
      flags &= ~static_cast<uint64_t>(MAP_ANONYMOUS);
      flags = (flags & ~static_cast<uint64_t>(MAP_PRIVATE)) | MAP_SHARED;
      uint64_t got = rt.check(
          "mmap", SYS_mmap,
          {v.start(), v.end() - v.start(), prot, flags, static_cast<uint64_t>(fd), v.pgoff()});
      rt.check("close", SYS_close, {static_cast<uint64_t>(fd)});
      if (got != v.start()) fail("task {}: mmap placed {:#x} at {:#x}", pid, v.start(), got);
      continue;
    }
    if (v.status() & image::kVmaSocket) {
      // A packet socket's ring: the task maps cryo's socket (the one it gets later), through an
      // fd it holds for the time of the mmap.
      const auto id = static_cast<uint32_t>(v.shmid());
      const file_entry& f = files.entry(id);
      if (f.type() != PACKETSK)
        fail("task {}: mapping {:#x}-{:#x} is of socket file {}, which is not a packet socket", pid,
             v.start(), v.end(), id);
      FdInstaller installer(rt, 0);
      const uint64_t sfd = installer.take(files.get(id), "packet socket ring");
      installer.close();
      flags &= ~static_cast<uint64_t>(MAP_ANONYMOUS);
      uint64_t got = rt.check("mmap of a packet ring", SYS_mmap,
                              {v.start(), v.end() - v.start(), prot, flags, sfd, v.pgoff()});
      rt.check("close", SYS_close, {sfd});
      if (got != v.start()) fail("task {}: mmap placed {:#x} at {:#x}", pid, v.start(), got);
      continue;
    }
    if (v.status() & (image::kVmaFilePrivate | image::kVmaFileShared)) {
      auto it = file_fds.find(v.shmid());
      if (it == file_fds.end() && (v.status() & image::kVmaMemfd)) {
        // The memfd cryo made (filled and sealed), opened anew by the task through cryo's fd.
        const auto id = static_cast<uint32_t>(v.shmid());
        std::string mine = fmt::format("/proc/{}/fd/{}", ::getpid(), files.get(id));
        bool rw = (files.entry(id).memfd().flags() & O_ACCMODE) == O_RDWR;
        fd = static_cast<long>(
            rt.check("open of a mapped memfd", SYS_openat,
                     {static_cast<uint64_t>(AT_FDCWD), rt.put_str(0, mine),
                      static_cast<uint64_t>((rw ? O_RDWR : O_RDONLY) | O_CLOEXEC), 0}));
        file_fds[v.shmid()] = fd;
      } else if (it == file_fds.end()) {
        const reg_file_entry& r = plan.reg(static_cast<uint32_t>(v.shmid()), "mapping", pid);
        bool rw = (v.status() & image::kVmaFileShared) && (r.flags() & O_ACCMODE) == O_RDWR;
        fd = static_cast<long>(open_in_task(rt, r, rw ? O_RDWR : O_RDONLY, "mapped file"));
        file_fds[v.shmid()] = fd;
      } else {
        fd = it->second;
      }
      flags &= ~static_cast<uint64_t>(MAP_ANONYMOUS);
    }
    // What needs the mapping at once (or its exact error) leaves the batch.
    if (i > 0 && mergeable(mm.vmas(i - 1), v)) {
      batch.flush();
      anon.map_apart(v, prot, flags, busy);
      continue;
    }
    const bool accounted = v.cryo_accounted() && fd < 0 && !fill[i];
    if (!(flags & MAP_HUGETLB) && !accounted) {
      batch.add(SYS_mmap,
                {v.start(), v.end() - v.start(), prot, flags, static_cast<uint64_t>(fd),
                 fd >= 0 ? v.pgoff() : 0},
                fmt::format("mmap of {:#x}-{:#x}", v.start(), v.end()), v.start());
      continue;
    }
    batch.flush();
    long r = rt.syscall(SYS_mmap, {v.start(), v.end() - v.start(), prot, flags,
                                   static_cast<uint64_t>(fd), fd >= 0 ? v.pgoff() : 0});
    const auto got = static_cast<uint64_t>(r);
    if (r == -ENOMEM && (flags & MAP_HUGETLB))
      fail_huge_pages(ENOMEM, static_cast<uint32_t>(flags & image::kVmaHugetlbFlags),
                      v.end() - v.start(),
                      fmt::format("task {}: mapping {:#x}-{:#x}", pid, v.start(), v.end()));
    if (r < 0 && r > -4096)
      fail_errno(static_cast<int>(-r), "task {}: cannot map {:#x}-{:#x}", pid, v.start(), v.end());
    if (got != v.start()) fail("task {}: mmap placed {:#x} at {:#x}", pid, v.start(), got);
    // mprotect drops the charge of an anonymous VMA that has no anon_vma yet.
    if (accounted) anon.give_anon_vma(v.start());
  }
  batch.flush();
  log::debug("task {}: {} mappings made", pid, mm.vmas_size());
  for (auto& [id, fd] : file_fds) rt.check("close", SYS_close, {static_cast<uint64_t>(fd)});

  // Memory: process_vm_writev faults the pages in from inside the kernel, in bulk, which is
  // faster here than populating first with MADV_POPULATE_WRITE (0.62 s vs 0.93 s per GiB).
  uint64_t written = 0;
  if (!runs.empty()) {
    auto tp0 = std::chrono::steady_clock::now();
    // The runs, cut at most 64 MiB each (the progress display moves, at no measurable cost)
    // and split into equal shares for a few threads: the copy (and the faults it takes in
    // both address spaces) runs in parallel.
    constexpr uint64_t kMaxRun = 64ULL << 20;
    uint64_t off = 0;
    std::vector<Run> cut;
    for (const Run& r : runs) {
      for (uint64_t at = 0; at < r.len; at += kMaxRun)
        cut.push_back({r.vaddr + at, std::min(kMaxRun, r.len - at), r.src + at});
      off += r.len;
      written += r.len / kernel::kPageSize;
    }
    unsigned nthreads = std::clamp(std::thread::hardware_concurrency(), 1u, 8u);
    if (off < (64ULL << 20)) nthreads = 1;
    // Cut points: by bytes, splitting runs where needed.
    std::vector<std::vector<Run>> shares(nthreads);
    uint64_t per = (off + nthreads - 1) / nthreads, acc = 0;
    for (Run r : cut) {
      while (r.len) {
        size_t k = std::min<size_t>(acc / std::max<uint64_t>(per, 1), nthreads - 1);
        uint64_t room = (k + 1) * per - acc;
        uint64_t take = (k == nthreads - 1)
                            ? r.len
                            : std::min(r.len, std::max<uint64_t>(room, kernel::kPageSize));
        shares[k].push_back({r.vaddr, take, r.src});
        r.vaddr += take;
        r.src += take;
        r.len -= take;
        acc += take;
      }
    }
    auto copy = [&](const std::vector<Run>& share) {
      std::vector<iovec> remote;
      size_t i = 0;
      while (i < share.size()) {
        // One local range (contiguous in the image) to many remote ranges.
        remote.clear();
        const char* start = share[i].src;
        uint64_t len = 0;
        while (i < share.size() && remote.size() < IOV_MAX && share[i].src == start + len &&
               len < kMaxRun) {
          remote.push_back({reinterpret_cast<void*>(share[i].vaddr), share[i].len});
          len += share[i].len;
          i++;
        }
        iovec local{const_cast<char*>(start), len};
        ssize_t n = ::process_vm_writev(pid, &local, 1, remote.data(), remote.size(), 0);
        if (n != static_cast<ssize_t>(len))
          fail_sys("cannot write the memory of task {} at {:#x}", pid,
                   reinterpret_cast<uint64_t>(remote[0].iov_base));
        progress::add_done(len / kernel::kPageSize);
      }
    };
    std::vector<std::thread> workers;
    std::vector<std::exception_ptr> errors(nthreads);
    for (unsigned k = 1; k < nthreads; k++)
      workers.emplace_back([&, k] {
        try {
          copy(shares[k]);
        } catch (...) {
          errors[k] = std::current_exception();
        }
      });
    try {
      copy(shares[0]);
    } catch (...) {
      errors[0] = std::current_exception();
    }
    for (auto& w : workers) w.join();
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
    auto tp2 = std::chrono::steady_clock::now();
    log::info("task {}: memory written in {:.3f} s", pid,
              std::chrono::duration<double>(tp2 - tp0).count());
  }

  // Final protections, advice and locks.
  for (int i = 0; i < mm.vmas_size(); i++) {
    const vma_entry& v = mm.vmas(i);
    if (is_special(v)) continue;
    uint64_t len = v.end() - v.start();
    if (as_mapped[i] != v.prot())
      batch.add(SYS_mprotect, {v.start(), len, v.prot()},
                fmt::format("mprotect of {:#x}", v.start()));
    if (v.madv() || (v.flags() & MAP_LOCKED)) batch.flush();  // advice and locks after it
    for (int adv = 0; adv < 64; adv++)
      if (v.madv() & (1ULL << adv)) {
        long r = rt.syscall(SYS_madvise, {v.start(), len, static_cast<uint64_t>(adv)});
        if (r < 0) log::warn("task {}: madvise({}) of {:#x} failed", pid, adv, v.start());
      }
    if (v.flags() & MAP_LOCKED) lock_vma(rt, v);
  }
  // Mappings made from now on are locked, as mlockall(MCL_FUTURE) said (cryo's own scratch
  // and shared memory mappings in the task are made already).
  if (uint32_t mcl = mm.cryo_mlockall()) {
    if (mcl & ~static_cast<uint32_t>(MCL_FUTURE | MCL_ONFAULT) || !(mcl & MCL_FUTURE))
      fail("image mm-{}.img is corrupt: mlockall flags {:#x}", pid, mcl);
    rt.check("mlockall", SYS_mlockall, {mcl});
  }

  batch.close();
  log::debug("task {}: final protections set", pid);

  // mm fields, auxv and exe link.
  // A child has its parent's exe link already; the kernel refuses to change it (EBUSY) while
  // the old file is mapped, even to the same file.
  const bool same_exe = parent && parent->mm.exe_file_id() == mm.exe_file_id();
  const reg_file_entry& exe = plan.reg(mm.exe_file_id(), "executable", pid);
  uint64_t exe_fd = same_exe ? ~0U : open_in_task(rt, exe, O_RDONLY, "executable");
  std::vector<uint64_t> auxv(mm.mm_saved_auxv().begin(), mm.mm_saved_auxv().end());
  uint64_t auxv_addr = rt.put(4096, auxv.data(), auxv.size() * 8);
  kernel::PrctlMmMap m{};
  m.start_code = mm.mm_start_code();
  m.end_code = mm.mm_end_code();
  m.start_data = mm.mm_start_data();
  m.end_data = mm.mm_end_data();
  m.start_brk = mm.mm_start_brk();
  m.brk = mm.mm_brk();
  m.start_stack = mm.mm_start_stack();
  m.arg_start = mm.mm_arg_start();
  m.arg_end = mm.mm_arg_end();
  m.env_start = mm.mm_env_start();
  m.env_end = mm.mm_env_end();
  m.auxv = auxv_addr;
  m.auxv_size = static_cast<uint32_t>(auxv.size() * 8);
  m.exe_fd = static_cast<uint32_t>(exe_fd);
  uint64_t ma = rt.put(1024, &m, sizeof m);
  rt.check("prctl(PR_SET_MM_MAP)", SYS_prctl, {PR_SET_MM, PR_SET_MM_MAP, ma, sizeof m, 0});
  if (!same_exe) rt.check("close", SYS_close, {exe_fd});
  if (mm.thp_disabled())
    rt.check("prctl(PR_SET_THP_DISABLE)", SYS_prctl, {PR_SET_THP_DISABLE, 1, 0, 0, 0});
  log::info("task {}: address space restored, {} pages written, {} kept from its parent", pid,
            written, inherited_pages);
  return {written, compared, inherited_pages, vdso.parked(), vdso.parked_len()};
}

}  // namespace cryo::restore
