#include "restore/ghost_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "base/strings.h"
#include "ghost-file.pb.h"
#include "image/image.h"

namespace cryo::restore {
namespace {

// Writes the content of regular ghost file `g` (read from `r`, the rest of its image `name`).
void fill(int fd, image::Reader& r, const ghost_file_entry& g, const std::string& name,
          const std::string& where) {
  auto put = [&](uint64_t off, std::string_view data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n =
          ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(off + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail_sys("cannot write the content of deleted file {} into {}", name, where);
      done += static_cast<size_t>(n);
    }
  };
  uint64_t size = g.size();
  if (g.chunks()) {
    ghost_chunk_entry c;
    while (r.next(c)) {
      if (c.len() > size || c.off() > size - c.len())
        fail("image {} is corrupt: a chunk ends past the file", name);
      put(c.off(), r.take_raw(c.len()));
    }
  } else {
    if (!g.has_size()) fail("image {} is corrupt: no size and no chunks", name);
    put(0, r.take_raw(size));
  }
  if (::ftruncate(fd, static_cast<off_t>(size)) < 0)
    fail_sys("cannot size deleted file {} to {} bytes", where, size);
}

// Makes the node of ghost `g` at `path`: false when the name is taken.
bool make_node(const std::string& path, const ghost_file_entry& g, const std::string& name,
               Fd* fd) {
  int r = 0;
  switch (g.mode() & S_IFMT) {
    case S_IFREG:
      fd->reset(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      r = *fd ? 0 : -1;
      break;
    case S_IFDIR:
      r = ::mkdir(path.c_str(), 0700);
      break;
    case S_IFIFO:
      r = ::mkfifo(path.c_str(), 0600);
      break;
    case S_IFCHR:
    case S_IFBLK:
      if (!g.has_rdev()) fail("image {} is corrupt: a device node without its device", name);
      r = ::mknod(path.c_str(), (g.mode() & S_IFMT) | 0600,
                  makedev(major(g.rdev()), minor(g.rdev())));
      break;
    case S_IFLNK:
      if (!g.has_symlnk_target()) fail("image {} is corrupt: a symlink without its target", name);
      r = ::symlink(g.symlnk_target().c_str(), path.c_str());
      break;
    default:
      fail("image {}: a ghost file of mode {:o} cannot be made", name, g.mode());
  }
  if (r == 0) return true;
  if (errno == EEXIST) return false;
  fail_sys("cannot recreate deleted {} {} (its directory must exist)", file_kind(g.mode()),
           printable(path));
}

// Gives the node at `path` the owner, mode and times of ghost `g`.
void set_attrs(const std::string& path, const ghost_file_entry& g) {
  const std::string where = printable(path);
  if (::fchownat(AT_FDCWD, path.c_str(), g.uid(), g.gid(), AT_SYMLINK_NOFOLLOW) < 0)
    fail_sys("cannot give deleted file {} its owner {}:{}", where, g.uid(), g.gid());
  if (!S_ISLNK(g.mode()) && ::chmod(path.c_str(), g.mode() & 07777) < 0)
    fail_sys("cannot give deleted file {} its mode {:o}", where, g.mode() & 07777);
  timespec times[2] = {
      {static_cast<time_t>(g.atim().tv_sec()), static_cast<long>(g.atim().tv_usec() * 1000)},
      {static_cast<time_t>(g.mtim().tv_sec()), static_cast<long>(g.mtim().tv_usec() * 1000)}};
  if (g.has_atim() && g.has_mtim() &&
      ::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) < 0)
    fail_sys("cannot set the times of deleted file {}", where);
}

}  // namespace

GhostFiles::GhostFiles(Plan& plan) {
  // Not a function-try-block: its handler would run after the members are gone.
  try {
    create(plan);
  } catch (...) {
    remove();  // the destructor does not run for a constructor that throws
    throw;
  }
}

void GhostFiles::create(Plan& plan) {
  std::map<uint32_t, std::string> made;  // ghost id -> where it is
  for (const auto& [file_id, ghost_id] : plan.ghosts) {
    auto fe = plan.files.find(file_id);
    if (fe == plan.files.end() || !fe->second.has_reg())
      fail("image remap-fpath.img is corrupt: file {} is not a regular file entry", file_id);
    reg_file_entry* r = fe->second.mutable_reg();
    auto it = made.find(ghost_id);
    if (it == made.end()) {
      const std::string name = fmt::format("ghost-file-{:x}.img", ghost_id);
      image::Reader img(plan.dir, name, image::magic::kGhostFile);
      ghost_file_entry g;
      if (!img.next(g)) fail("image {} is truncated: no entry", name);
      // At its old name when that is free, so the tree sees the same "(deleted)" path.
      std::string path = r->name();
      Fd fd;
      // Else next to it; a restore killed with SIGKILL may have left a ghost of its own there.
      for (int n = 0; !make_node(path, g, name, &fd); n++) {
        if (n == 100) {
          errno = EEXIST;
          fail_sys("cannot recreate deleted file {}: {} and 99 other names next to it are taken",
                   printable(r->name()), printable(path));
        }
        path = n == 0 ? fmt::format("{}.cryo.{:x}.ghost", r->name(), ghost_id)
                      : fmt::format("{}.cryo.{:x}.{}.ghost", r->name(), ghost_id, n);
      }
      struct stat st;
      if (::lstat(path.c_str(), &st) < 0) fail_sys("cannot stat {}", printable(path));
      created_.push_back({path, st.st_dev, st.st_ino, S_ISDIR(st.st_mode)});
      if (S_ISREG(g.mode())) fill(fd.get(), img, g, name, printable(path));
      set_attrs(path, g);
      log::debug("deleted {} {} recreated at {} from ghost {}", file_kind(g.mode()),
                 printable(r->name()), printable(path), ghost_id);
      it = made.emplace(ghost_id, path).first;
    }
    r->set_name(it->second);
  }
}

void GhostFiles::remove() {
  for (const Made& m : created_) {
    struct stat st;
    if (::lstat(m.path.c_str(), &st) < 0 || st.st_dev != m.dev || st.st_ino != m.ino) continue;
    if ((m.dir ? ::rmdir(m.path.c_str()) : ::unlink(m.path.c_str())) < 0 && errno != ENOENT)
      log::warn("cannot remove the temporary file {}: {}", m.path, std::strerror(errno));
  }
  created_.clear();
}

void GhostFiles::drop_links(const Plan& plan) {
  for (const std::string& path : plan.link_remaps)
    if (::unlink(path.c_str()) < 0 && errno != ENOENT)
      log::warn("cannot remove {}, the link made for --link-remap: {}", printable(path),
                std::strerror(errno));
}

}  // namespace cryo::restore
