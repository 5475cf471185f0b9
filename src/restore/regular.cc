// Files with a path (regular files, directories, devices opened by name) and memfds.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <utility>

#include "base/error.h"
#include "base/strings.h"
#include "image/image.h"
#include "kernel/syscalls.h"
#include "pagemap.pb.h"
#include "restore/file_kind.h"
#include "restore/files.h"
#include "restore/mounts.h"
#include "restore/shmem.h"

namespace cryo::restore {
namespace {

// A mapping of cryo's own, unmapped when it goes.
struct OwnMapping {
  char* p = nullptr;
  size_t len = 0;
  OwnMapping() = default;
  OwnMapping(char* at, size_t n) : p(at), len(n) {}
  OwnMapping(const OwnMapping&) = delete;
  OwnMapping& operator=(OwnMapping&& o) noexcept {
    std::swap(p, o.p);
    std::swap(len, o.len);
    return *this;
  }
  ~OwnMapping() {
    if (p) ::munmap(p, len);
  }
};

class MemfdKind : public FileKind {
 public:
  fd_types type() const override { return MEMFD; }
  Fd open(const file_entry& f, FileSet& files) override {
    return open_memfd(files.plan(), f.memfd());
  }

 private:
  Fd open_memfd(const Plan& plan, const memfd_file_entry& m);
  std::map<uint64_t, Fd> memfds_;  // by inode id: cryo's memfd
};

class RegularKind : public FileKind {
 public:
  fd_types type() const override { return REG; }
  void check(Plan& plan, const file_entry& f, pid_t pid, int) const override {
    check_file(plan, f.reg(), pid, "open file");
  }
  Fd open(const file_entry& f, FileSet&) override { return open_regular(f.reg()); }
  bool after_others(const file_entry& f) const override {
    const std::string& n = f.reg().name();
    return n.rfind("/proc/", 0) == 0 &&
           (n.find("/fd/") != std::string::npos || n.find("/fdinfo/") != std::string::npos);
  }

 private:
  static Fd open_regular(const reg_file_entry& r);
};

Fd RegularKind::open_regular(const reg_file_entry& r) {
  Fd fd = open_checked(tree_path(r.name(), r.mnt_id()), r.flags(), r.has_mode(), r.mode(),
                       fmt::format("file {}", r.id()));
  if (r.pos() && ::lseek(fd.get(), static_cast<off_t>(r.pos()), SEEK_SET) < 0 && errno != ESPIPE)
    fail_sys("cannot seek {} to {}", printable(r.name()), r.pos());
  return fd;
}

// A memfd is created once per inode, filled, sealed; each open file on it is a new open of
// it (through /proc/self/fd) with its own flags and offset.
Fd MemfdKind::open_memfd(const Plan& plan, const memfd_file_entry& m) {
  auto& mfd = memfds_[m.inode_id()];
  if (!mfd) {
    auto it = plan.memfd_inodes.find(m.inode_id());
    if (it == plan.memfd_inodes.end())
      fail("image memfd.img does not hold memfd inode {} of file {}", m.inode_id(), m.id());
    const memfd_inode_entry& mi = it->second;
    const std::string name = printable(mi.name());
    constexpr uint32_t kSealSeal = 1;  // F_SEAL_SEAL alone: created without MFD_ALLOW_SEALING
    bool sealing = mi.seals() != kSealSeal;
    const uint32_t huge = mi.has_hugetlb_flag() ? mi.hugetlb_flag() : 0;
    mfd.reset(
        ::memfd_create(mi.name().c_str(), MFD_CLOEXEC | (sealing ? MFD_ALLOW_SEALING : 0) | huge));
    if (!mfd) fail_sys("cannot create memfd {} (hugetlb flags {:#x})", name, huge);
    if (mi.size() > static_cast<uint64_t>(INT64_MAX) ||
        ::ftruncate(mfd.get(), static_cast<off_t>(mi.size())) < 0)
      fail_sys("cannot size memfd {} to {} bytes", name, mi.size());
    // hugetlbfs has no write(): a memfd of huge pages is filled through a mapping.
    OwnMapping map;
    if (huge && mi.size()) {
      void* p = ::mmap(nullptr, mi.size(), PROT_READ | PROT_WRITE, MAP_SHARED, mfd.get(), 0);
      if (p == MAP_FAILED)
        fail_huge_pages(errno, huge, mi.size(), fmt::format("memfd {} of huge pages", name));
      map = OwnMapping{static_cast<char*>(p), mi.size()};
    }
    const SharedPages& sp = plan.shared_pages.at(mi.shmid());  // checked by the planner
    std::string pages = fmt::format("{}/pages-{}.img", plan.dir, sp.pages_id);
    Fd pf = image::open_image(pages);
    off_t off = 0;
    for (const pagemap_entry& e : sp.runs) {
      uint64_t len = uint64_t{e.nr_pages()} * kernel::kPageSize;
      read_pages_in_chunks(pf.get(), pages, off, len, [&](uint64_t at, const char* p, size_t n) {
        // The last page may reach past the file's size: write only what the file holds.
        uint64_t start = e.vaddr() + at;
        uint64_t end = std::min<uint64_t>(start + n, mi.size());
        if (map.p && start < end) std::memcpy(map.p + start, p, end - start);
        for (uint64_t w = map.p ? end : start; w < end;) {
          ssize_t k = ::pwrite(mfd.get(), p + (w - start), end - w, static_cast<off_t>(w));
          if (k < 0 && errno == EINTR) continue;
          if (k <= 0) fail_sys("cannot fill memfd {}", name);
          w += static_cast<uint64_t>(k);
        }
      });
      off += static_cast<off_t>(len);
    }
    map = OwnMapping{};  // a writable mapping would forbid F_SEAL_WRITE
    if (mi.has_mode() && ::fchmod(mfd.get(), mi.mode() & 07777) < 0)
      fail_sys("cannot give memfd {} its mode {:o}", name, mi.mode() & 07777);
    if (sealing && mi.seals() && ::fcntl(mfd.get(), F_ADD_SEALS, mi.seals()) < 0)
      fail_sys("cannot seal memfd {} with {:#x}", name, mi.seals());
  }
  uint32_t flags = m.flags() & ~static_cast<uint32_t>(O_CREAT | O_EXCL | O_TRUNC);
  Fd fd(::open(fmt::format("/proc/self/fd/{}", mfd.get()).c_str(),
               static_cast<int>(flags | O_CLOEXEC)));
  if (!fd) fail_sys("cannot open memfd file {}", m.id());
  if (m.pos() && ::lseek(fd.get(), static_cast<off_t>(m.pos()), SEEK_SET) < 0)
    fail_sys("cannot seek memfd file {} to {}", m.id(), m.pos());
  return fd;
}

}  // namespace

std::unique_ptr<FileKind> make_regular_kind() {
  return std::make_unique<RegularKind>();
}
std::unique_ptr<FileKind> make_memfd_kind() {
  return std::make_unique<MemfdKind>();
}

}  // namespace cryo::restore
