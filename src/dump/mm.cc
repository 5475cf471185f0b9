#include "dump/mm.h"

#include <fcntl.h>
#include <sys/mman.h>
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

}  // namespace

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
    uint32_t flags = v.shared ? MAP_SHARED : MAP_PRIVATE;
    if (v.has_flag("gd")) flags |= MAP_GROWSDOWN;
    if (v.has_flag("nr")) flags |= MAP_NORESERVE;
    e->set_fd(-1);
    // As CRIU, for every mapping: how its file would be opened ("mw": may be made writable).
    e->set_fdflags((v.shared && (v.w || v.has_flag("mw"))) ? O_RDWR : O_RDONLY);
    if (uint64_t m = madv_bits(v)) e->set_madv(m);
    uint32_t status = image::kVmaRegular;
    auto where = [&] {
      return fmt::format("task {} mapping {:x}-{:x} {}", pid, v.start, v.end, v.path);
    };
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
    } else if (v.shared && (v.path.empty() || v.path == "/dev/zero (deleted)")) {
      status |= image::kVmaAnonShared;
      flags |= MAP_ANONYMOUS;
      e->set_shmid(v.inode);
      shmem.add(pid, v.inode, v.start, v.end);
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
      if (v.path.rfind("/SYSV", 0) == 0 || v.path.rfind("/dev/zero", 0) == 0)
        fail("{}: SysV shared memory and /dev/zero mappings are not supported yet", where());
      if (v.has_flag("io") || v.has_flag("pf"))
        fail("{}: device (I/O) mappings are not supported", where());
      status |= v.shared ? image::kVmaFileShared : image::kVmaFilePrivate;
      // "mw": the mapping may be made writable later, so the file was open for writing.
      uint32_t oflags = (v.shared && (v.w || v.has_flag("mw"))) ? O_RDWR : O_RDONLY;
      std::string map_file = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, v.start, v.end);
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
