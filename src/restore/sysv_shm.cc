#include "restore/sysv_shm.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "image/ipc_var.h"
#include "kernel/namespace.h"
#include "kernel/syscalls.h"
#include "kernel/sysv_ipc.h"
#include "proc/proc.h"
#include "restore/ipc_ns.h"
#include "restore/tree.h"
#include "restore/validate.h"

namespace cryo::restore {
namespace {

constexpr const char* kNextId = "/proc/sys/kernel/shm_next_id";
constexpr uint32_t kModeBits = 0777 | SHM_DEST | SHM_LOCKED;
constexpr const char* kRedo = "corrupt or edited images: dump the tree again";

std::string describe(const ipc_desc_entry& d, uint64_t size) {
  return fmt::format("key {:#x}, {} bytes, mode {:o}, creator uid {} gid {}", d.key(), size,
                     d.mode() & 0777, d.cuid(), d.cgid());
}

// The segment `id`'s state; nullopt when there is no such segment.
std::optional<struct shmid_ds> stat_segment(uint32_t id) {
  struct shmid_ds ds {};
  if (::shmctl(static_cast<int>(id), IPC_STAT, &ds) == 0) return ds;
  if (errno == EINVAL || errno == EIDRM) return std::nullopt;
  fail_sys("cannot read the state of SysV shared memory segment {}", id);
}

// The id chosen for the next segment is taken by the next creation only: when a creation
// failed before taking it, a throwaway segment takes it (the kernel refuses -1 there).
void release_next_id() {
  auto next = proc::try_read_file(kNextId);
  if (!next || std::atol(next->c_str()) < 0) return;
  int junk = ::shmget(IPC_PRIVATE, 1, 0600 | IPC_CREAT);
  if (junk >= 0) ::shmctl(junk, IPC_RMID, nullptr);
}

}  // namespace

SysvSegments::SysvSegments(const Plan& plan) {
  const std::string vars = fmt::format("ipcns-var-{}.img", plan.tasks[0].ids.ipc_ns_id());
  if (image::exists(plan.dir, vars)) {
    fresh_ns_ = true;
    image::read_one(plan.dir, vars, image::magic::kIpcVar, vars_);
  }
  load(plan);
  check_attachments(plan);
  if (fresh_ns_) return;  // made by place(), in the namespace the root makes
  // Checked all before making any: a restore refused for one segment leaves nothing made.
  std::map<uint32_t, bool> reused;
  for (const auto& [id, s] : segments_) reused[id] = reuse(s);
  try {
    for (auto& [id, s] : segments_) {
      if (!reused[id]) make(s);
      fill(s, s.made);
    }
  } catch (...) {
    remove_made();
    throw;
  }
}

SysvSegments::~SysvSegments() {
  if (!kept_) remove_made();
}

void SysvSegments::place(size_t i, pid_t pid) {
  if (i != 0 || !fresh_ns_) return;
  ns_path_ = fmt::format("/proc/{}/ns/ipc", pid);
  // A failure needs no cleanup: the namespace goes with the tasks the restore kills.
  kernel::in_namespace(ns_path_, CLONE_NEWIPC, [&] {
    for (auto& [id, s] : segments_) {
      make(s);
      fill(s, true);
    }
  });
}

void SysvSegments::remove_made() {
  if (fresh_ns_) return;  // ids of another namespace: cryo's segments with them are not ours
  // A segment still attached (by tasks being killed) goes with its last attachment.
  for (const auto& [id, s] : segments_)
    if (s.made && ::shmctl(static_cast<int>(id), IPC_RMID, nullptr) < 0 && errno != EINVAL &&
        errno != EIDRM)
      log::warn("cannot remove SysV shared memory segment {}: {}", id, std::strerror(errno));
}

void SysvSegments::load(const Plan& plan) {
  const std::string name = fmt::format("ipcns-shm-{}.img", plan.tasks[0].ids.ipc_ns_id());
  if (!image::exists(plan.dir, name)) return;
  image_.emplace(plan.dir, name, image::magic::kIpcnsShm);
  auto shmmax = proc::try_read_file("/proc/sys/kernel/shmmax");
  const uint64_t max = fresh_ns_ ? vars_.shm_ctlmax()
                       : shmmax  ? std::stoull(*shmmax)
                                 : kSharedObjectMax;
  for (ipc_shm_entry e; image_->next(e);) {
    const ipc_desc_entry& d = e.desc();
    const std::string what = fmt::format("image {}: segment {}", name, d.id());
    if (e.in_pagemaps())
      fail("{}: its content is in pagemap images (CRIU's way), which cryo does not read yet", what);
    if (e.has_hugetlb_flag() && e.hugetlb_flag())
      fail("{}: SysV shared memory in huge pages is not supported yet", what);
    if (d.id() > INT32_MAX) fail("{}: the id is out of range: {}", what, kRedo);
    if (d.mode() & ~kModeBits) fail("{}: mode {:o} has unknown bits: {}", what, d.mode(), kRedo);
    if (e.size() == 0 || e.size() > std::min(max, kSharedObjectMax))
      fail("{}: size {} is not one this machine allows (kernel.shmmax {}): {}", what, e.size(), max,
           kRedo);
    Segment s{e, image_->take_raw(e.size()), false};
    image_->take_raw((4 - e.size() % 4) % 4);
    if (!segments_.emplace(d.id(), std::move(s)).second) fail("{}: listed twice: {}", what, kRedo);
  }
}

void SysvSegments::check_attachments(const Plan& plan) const {
  for (const auto& t : plan.tasks)
    for (const auto& v : t.mm.vmas()) {
      if (!(v.status() & image::kVmaSysvipc)) continue;
      const auto id = static_cast<uint32_t>(v.shmid());
      const std::string what =
          fmt::format("image mm-{}.img: mapping {:#x}-{:#x} of SysV segment {}", t.pid(), v.start(),
                      v.end(), id);
      if (!(v.flags() & MAP_SHARED)) fail("{}: not a shared mapping: {}", what, kRedo);
      uint64_t size;
      auto it = segments_.find(id);
      if (it != segments_.end()) {
        size = it->second.entry.size();
      } else {
        // Images without the segment (CRIU's, of a tree outside an IPC namespace): it must be
        // here, as CRIU has it.
        if (fresh_ns_)
          fail("{}: the images of the tree's IPC namespace do not hold that segment: {}", what,
               kRedo);
        auto ds = stat_segment(id);
        if (!ds || v.shmid() > INT32_MAX)
          fail("{}: the images do not hold the segment and there is no such segment here", what);
        size = ds->shm_segsz;
      }
      if (v.pgoff() > kernel::page_up(size) ||
          v.end() - v.start() > kernel::page_up(size) - v.pgoff())
        fail("{}: reaches past the segment's {} bytes: {}", what, size, kRedo);
    }
}

bool SysvSegments::reuse(const Segment& s) const {
  const ipc_desc_entry& d = s.entry.desc();
  auto ds = stat_segment(d.id());
  if (!ds) {
    // Its key must be free too; a key shown as 0 is private (IPC_PRIVATE, or removed).
    if (d.key() != IPC_PRIVATE && !(d.mode() & SHM_DEST)) {
      int other = ::shmget(static_cast<key_t>(d.key()), 0, 0);
      if (other >= 0)
        fail(
            "SysV shared memory segment {} ({}) cannot be made again: its key is taken by "
            "segment {} (remove that one with ipcrm -m {} if it is stale)",
            d.id(), describe(d, s.entry.size()), other, other);
    }
    return false;
  }
  ipc_desc_entry now;
  now.set_key(static_cast<uint32_t>(ds->shm_perm.__key));
  now.set_mode(ds->shm_perm.mode);
  now.set_cuid(ds->shm_perm.cuid);
  now.set_cgid(ds->shm_perm.cgid);
  const bool same = !(d.mode() & SHM_DEST) && !(ds->shm_perm.mode & SHM_DEST) &&
                    now.key() == d.key() && ds->shm_segsz == s.entry.size() &&
                    (now.mode() & 0777) == (d.mode() & 0777) && now.cuid() == d.cuid() &&
                    now.cgid() == d.cgid();
  if (!same)
    fail(
        "SysV shared memory segment {} ({}{}) cannot be restored: its id is taken by another "
        "segment ({}{}); remove that one (ipcrm -m {}) if it is stale",
        d.id(), describe(d, s.entry.size()), d.mode() & SHM_DEST ? ", marked for removal" : "",
        describe(now, ds->shm_segsz), ds->shm_perm.mode & SHM_DEST ? ", marked for removal" : "",
        d.id());
  if (ds->shm_nattch)
    fail(
        "SysV shared memory segment {} ({}) is attached {} time(s) by processes outside the "
        "restore (last by pid {}): restoring its content would change their memory",
        d.id(), describe(d, s.entry.size()), ds->shm_nattch, ds->shm_lpid);
  log::info("SysV shared memory segment {} is here: reused", d.id());
  return true;
}

void SysvSegments::make(Segment& s) {
  const ipc_desc_entry& d = s.entry.desc();
  // A segment marked for removal had its key made private.
  const key_t key = (d.mode() & SHM_DEST) ? IPC_PRIVATE : static_cast<key_t>(d.key());
  kernel::set_next_id(kNextId, d.id());
  int got = kernel::create_as(d.cuid(), d.cgid(), [&] {
    return ::shmget(key, s.entry.size(), static_cast<int>(d.mode() & 0777) | IPC_CREAT | IPC_EXCL);
  });
  if (got < 0) {
    release_next_id();  // it must not give the id to another creator
    fail_errno(-got, "cannot make SysV shared memory segment {} ({}) again", d.id(),
               describe(d, s.entry.size()));
  }
  if (static_cast<uint32_t>(got) != d.id()) {
    ::shmctl(got, IPC_RMID, nullptr);
    fail(
        "cannot make SysV shared memory segment {} again: it got id {} (another process made a "
        "segment at the same time?)",
        d.id(), got);
  }
  s.made = true;
  struct shmid_ds ds {};
  if (::shmctl(got, IPC_STAT, &ds) < 0) fail_sys("cannot read SysV shared memory segment {}", got);
  ds.shm_perm.uid = d.uid();
  ds.shm_perm.gid = d.gid();
  ds.shm_perm.mode = static_cast<unsigned short>(d.mode() & 0777);
  if (::shmctl(got, IPC_SET, &ds) < 0)
    fail_sys("cannot set the owner (uid {} gid {}) of SysV shared memory segment {}", d.uid(),
             d.gid(), got);
  log::info("SysV shared memory segment {} made again ({})", d.id(), describe(d, s.entry.size()));
}

void SysvSegments::fill(const Segment& s, bool fresh) const {
  const ipc_desc_entry& d = s.entry.desc();
  const int id = static_cast<int>(d.id());
  {
    // Through the segment's file, read and written without faulting its pages in: a new
    // segment is all holes, which stay holes where the content is zero; a reused one is
    // written only where it differs.
    kernel::AttachedSegment a(d.id(), false);
    const uint64_t size = s.content.size();
    Fd fd(::open(a.file().c_str(), O_RDWR | O_CLOEXEC));
    if (!fd) fail_sys("cannot open SysV shared memory segment {} ({})", id, a.file());
    std::vector<char> now(1 << 20);
    for (uint64_t off = 0; off < size; off += now.size()) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(now.size(), size - off));
      if (fresh)
        std::memset(now.data(), 0, n);
      else if (::pread(fd.get(), now.data(), n, static_cast<off_t>(off)) != static_cast<ssize_t>(n))
        fail_sys("cannot read SysV shared memory segment {} at {}", id, off);
      for (size_t p = 0; p < n; p += kernel::kPageSize) {
        const size_t k = std::min<size_t>(kernel::kPageSize, n - p);
        const char* want = s.content.data() + off + p;
        if (std::memcmp(want, now.data() + p, k) != 0 &&
            ::pwrite(fd.get(), want, k, static_cast<off_t>(off + p)) != static_cast<ssize_t>(k))
          fail_sys("cannot write SysV shared memory segment {} at {}", id, off + p);
      }
    }
  }
  // The owner may have changed since (only the id, key, size, mode and creator were matched).
  struct shmid_ds ds {};
  if (::shmctl(id, IPC_STAT, &ds) < 0) fail_sys("cannot read SysV shared memory segment {}", id);
  if (ds.shm_perm.uid != d.uid() || ds.shm_perm.gid != d.gid()) {
    ds.shm_perm.uid = d.uid();
    ds.shm_perm.gid = d.gid();
    if (::shmctl(id, IPC_SET, &ds) < 0)
      fail_sys("cannot set the owner of SysV shared memory segment {}", id);
  }
  const bool lock = d.mode() & SHM_LOCKED;
  if (lock != static_cast<bool>(ds.shm_perm.mode & SHM_LOCKED) &&
      ::shmctl(id, lock ? SHM_LOCK : SHM_UNLOCK, nullptr) < 0)
    fail_sys("cannot {} SysV shared memory segment {}", lock ? "lock" : "unlock", id);
}

void SysvSegments::finish() {
  auto mark = [&] {
    for (const auto& [id, s] : segments_)
      if ((s.entry.desc().mode() & SHM_DEST) &&
          ::shmctl(static_cast<int>(id), IPC_RMID, nullptr) < 0)
        fail_sys("cannot mark SysV shared memory segment {} for removal again", id);
  };
  if (!fresh_ns_) return mark();
  if (segments_.empty()) return;  // the namespace's settings are all restored already
  kernel::in_namespace(ns_path_, CLONE_NEWIPC, [&] {
    mark();
    write_ipc_sysctl(image::kShmRmidForced, std::to_string(vars_.shm_rmid_forced()));
  });
}

void attach_sysv_shm(RemoteTask& rt, const vma_entry& v,
                     const std::vector<std::pair<uint64_t, uint64_t>>& busy) {
  const pid_t pid = rt.tid();
  const auto id = static_cast<uint32_t>(v.shmid());
  std::optional<struct shmid_ds> ds;
  // The id names a segment of the task's IPC namespace.
  kernel::in_namespace(fmt::format("/proc/{}/ns/ipc", pid), CLONE_NEWIPC,
                       [&] { ds = stat_segment(id); });
  if (!ds) fail("task {}: SysV shared memory segment {} is gone", pid, id);
  // Attached writable unless it was SHM_RDONLY (then not even mprotect could make it so).
  const bool rw = (v.fdflags() & O_ACCMODE) == O_RDWR || (v.prot() & PROT_WRITE);
  uint64_t flags = rw ? 0 : SHM_RDONLY;
  if (v.prot() & PROT_EXEC) flags |= SHM_EXEC;
  const uint64_t seg = kernel::page_up(ds->shm_segsz), len = v.end() - v.start();
  if (v.pgoff() == 0 && len == seg) {
    uint64_t at = rt.check("shmat", SYS_shmat, {id, v.start(), flags});
    if (at != v.start())
      fail("task {}: shmat placed segment {} at {:#x}, not {:#x}", pid, id, at, v.start());
  } else {
    // A part of the segment (the rest was unmapped): attached whole elsewhere, the part moved
    // to its place, the rest detached.
    const uint64_t tmp = pick_free(busy, seg);
    rt.check("shmat", SYS_shmat, {id, tmp, flags});
    rt.check("mremap of a SysV attachment", SYS_mremap,
             {tmp + v.pgoff(), len, len, MREMAP_MAYMOVE | MREMAP_FIXED, v.start()});
    rt.check("munmap", SYS_munmap, {tmp, seg});
  }
  const uint64_t prot = PROT_READ | (rw ? PROT_WRITE : 0) | (v.prot() & PROT_EXEC);
  if (prot != v.prot()) rt.check("mprotect", SYS_mprotect, {v.start(), len, v.prot()});
  log::debug("task {}: SysV segment {} attached at {:#x}-{:#x}", pid, id, v.start(), v.end());
}

}  // namespace cryo::restore
