#include "dump/sysv_shm.h"

#include <fcntl.h>
#include <sys/shm.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "image/image.h"
#include "ipc-shm.pb.h"
#include "kernel/syscalls.h"
#include "kernel/sysv_ipc.h"

namespace cryo::dump {

bool is_sysv_attachment(const proc::Vma& v) {
  // The kernel names a segment's file "SYSV" and its key in 8 hex digits; it has no link.
  constexpr size_t kName = 5 + 8;
  const std::string& p = v.path;
  if (!v.shared || p.rfind("/SYSV", 0) != 0 || p.size() < kName) return false;
  if (!std::all_of(p.begin() + 5, p.begin() + kName, [](char c) { return std::isxdigit(c); }))
    return false;
  return p.size() == kName || p.compare(kName, std::string::npos, " (deleted)") == 0;
}

void SysvShmTable::add(pid_t pid, const mm_entry& mm, uint32_t ipc_ns_id) {
  for (const vma_entry& v : mm.vmas()) {
    if (!(v.status() & image::kVmaSysvipc)) continue;
    // A segment id names a segment of one IPC namespace.
    if (ns_ && ns_ != ipc_ns_id)
      fail(
          "task {} attaches SysV shared memory of one IPC namespace (id {}), task {} of another "
          "(id {}): segments of two IPC namespaces are not supported yet",
          ns_pid_, ns_, pid, ipc_ns_id);
    ns_ = ipc_ns_id;
    ns_pid_ = pid;
    auto id = static_cast<uint32_t>(v.shmid());
    Segment& s = segments_[id];
    if (s.link.empty()) {
      s.pid = pid;
      s.link = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, v.start(), v.end());
    }
    s.attachments++;
  }
}

uint64_t SysvShmTable::dump(const std::string& dir, uint32_t ipc_ns_id,
                            const std::vector<uint32_t>& unattached) {
  if (!segments_.empty() && ns_ != ipc_ns_id)
    fail(
        "task {} attaches SysV shared memory of an IPC namespace (id {}) other than the root "
        "task's (id {}): not supported yet",
        ns_pid_, ns_, ipc_ns_id);
  for (uint32_t id : unattached) segments_.try_emplace(id);
  if (segments_.empty()) return 0;
  image::Writer w(dir, fmt::format("ipcns-shm-{}.img", ipc_ns_id), image::magic::kIpcnsShm);
  uint64_t pages = 0;
  std::vector<char> buf(1 << 20);
  for (const auto& [id, s] : segments_) {
    struct shmid_ds ds {};
    if (::shmctl(static_cast<int>(id), IPC_STAT, &ds) < 0)
      fail_sys("cannot read the state of the SysV shared memory segment {} (attached by task {})",
               id, s.pid);
    // nattch counts the VMAs of every attachment: more than the tree's are someone else's,
    // whose memory a restore would overwrite.
    if (ds.shm_nattch != s.attachments)
      fail(
          "SysV shared memory segment {} (key {:#x}) is attached {} times, only {} of them by "
          "the dumped tree (last attached or detached by pid {}): a segment shared with "
          "processes outside the tree is not supported",
          id, static_cast<uint32_t>(ds.shm_perm.__key), ds.shm_nattch, s.attachments, ds.shm_lpid);
    ipc_shm_entry e;
    ipc_desc_entry* d = e.mutable_desc();
    d->set_key(static_cast<uint32_t>(ds.shm_perm.__key));
    d->set_uid(ds.shm_perm.uid);
    d->set_gid(ds.shm_perm.gid);
    d->set_cuid(ds.shm_perm.cuid);
    d->set_cgid(ds.shm_perm.cgid);
    d->set_mode(ds.shm_perm.mode);
    d->set_id(id);
    e.set_size(ds.shm_segsz);
    e.set_in_pagemaps(false);  // the content follows the entry: what crit can decode
    w.put(e);

    // Through the segment's file: holes read as zeros without being allocated. One that no
    // task attaches is attached by cryo for the time of the copy (read-only).
    std::optional<kernel::AttachedSegment> mine;
    if (s.link.empty()) mine.emplace(id, true);
    const std::string link = mine ? mine->file() : s.link;
    Fd fd(::open(link.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) fail_sys("cannot open SysV shared memory segment {} ({})", id, link);
    for (uint64_t off = 0; off < ds.shm_segsz;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), ds.shm_segsz - off));
      ssize_t got = ::pread(fd.get(), buf.data(), n, static_cast<off_t>(off));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) fail_sys("cannot read SysV shared memory segment {} at {} ({})", id, off, link);
      w.put_raw(buf.data(), static_cast<size_t>(got));
      off += static_cast<uint64_t>(got);
    }
    static const char kZeros[4] = {};
    w.put_raw(kZeros, (4 - ds.shm_segsz % 4) % 4);
    pages += kernel::page_up(ds.shm_segsz) / kernel::kPageSize;
    log::info("SysV shared memory segment {} (key {:#x}, {} bytes, mode {:o}, {} attachment(s))",
              id, static_cast<uint32_t>(ds.shm_perm.__key), ds.shm_segsz, ds.shm_perm.mode,
              s.attachments);
  }
  w.close();
  return pages;
}

}  // namespace cryo::dump
