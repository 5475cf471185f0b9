#include "dump/ghost_files.h"

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "base/strings.h"
#include "ghost-file.pb.h"
#include "image/image.h"

namespace cryo::dump {

std::string deleted_path(const std::string& link, const std::string& proc_path, bool* linked) {
  constexpr std::string_view kSuffix = " (deleted)";
  if (link.size() <= kSuffix.size() || link.front() != '/' ||
      link.compare(link.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0)
    return "";
  std::string gone = link.substr(0, link.size() - kSuffix.size());
  struct stat st, named;
  if (proc_path.empty() || ::stat(proc_path.c_str(), &st) < 0) return gone;
  if (::lstat(link.c_str(), &named) == 0 && named.st_dev == st.st_dev && named.st_ino == st.st_ino)
    return "";  // a live file whose name ends in " (deleted)"
  if (!S_ISDIR(st.st_mode) && st.st_nlink > 0) {
    if (linked) {
      *linked = true;
      return gone;
    }
    fail(
        "{}: its name {} was removed but it keeps {} other hard link(s): dump with "
        "--link-remap to keep it by a new link in its directory (a saved copy would part "
        "from them)",
        proc_path, gone, st.st_nlink);
  }
  return gone;
}

GhostFiles::~GhostFiles() {
  for (const std::string& path : links_)
    if (::unlink(path.c_str()) < 0 && errno != ENOENT)
      log::warn("cannot remove the link {} made for --link-remap: {}", path, std::strerror(errno));
}

void GhostFiles::add(uint32_t file_id, const std::string& proc_path, const std::string& what) {
  // What it is first: opening a device or FIFO could block or act on it.
  struct stat st;
  if (::stat(proc_path.c_str(), &st) < 0)
    fail_sys("{}: cannot stat the deleted file through {}", what, proc_path);
  Fd fd;
  std::string target;
  if (S_ISREG(st.st_mode)) {
    fd.reset(::open(proc_path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (!fd) fail_sys("{}: cannot open the deleted file through {}", what, proc_path);
    if (::fstat(fd.get(), &st) < 0) fail_sys("{}: cannot stat the deleted file", what);
    // As CRIU: what the file holds on disk counts, so a large sparse file with little data
    // is saved.
    const uint64_t used = static_cast<uint64_t>(st.st_blocks) * 512;
    if (used > limit_)
      fail(
          "{}: the deleted file uses {} bytes on disk, over the ghost file limit of {} bytes: "
          "raise it with --ghost-limit SIZE",
          what, used, limit_);
  } else if (S_ISLNK(st.st_mode)) {
    // The /proc link leads to the symlink itself, not through it.
    Fd l(::open(proc_path.c_str(), O_PATH | O_CLOEXEC));
    char buf[PATH_MAX];
    ssize_t n = l ? ::readlinkat(l.get(), "", buf, sizeof buf) : -1;
    if (n < 0) fail_sys("{}: cannot read the target of the deleted symlink", what);
    target.assign(buf, static_cast<size_t>(n));
  } else if (!S_ISDIR(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode) &&
             !S_ISBLK(st.st_mode)) {
    fail(
        "{}: a deleted socket file is not supported: only files, directories, FIFOs, "
        "device nodes and symlinks are saved",
        what);
  }
  auto key = std::make_pair(st.st_dev, st.st_ino);
  auto it = ghosts_.find(key);
  if (it == ghosts_.end()) {
    Ghost g{next_id_++, std::move(fd), st, std::move(target)};
    it = ghosts_.emplace(key, std::move(g)).first;
  }
  remap_file_path_entry r;
  r.set_orig_id(file_id);
  r.set_remap_id(it->second.id);
  r.set_remap_type(GHOST);
  remaps_.push_back(r);
  log::debug("{}: deleted {} saved as ghost {}", what, file_kind(st.st_mode), it->second.id);
}

std::string GhostFiles::link(uint32_t file_id, uint32_t link_id, const std::string& proc_path,
                             const std::string& gone, const std::string& what) {
  const size_t slash = gone.rfind('/');
  const std::string path =
      fmt::format("{}/link_remap.{}", gone.substr(0, slash == 0 ? 0 : slash), link_id);
  // Through the /proc link: the open file's inode, whatever its names are now.
  if (::linkat(AT_FDCWD, proc_path.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) < 0)
    fail_sys("{}: cannot link the file whose name {} was removed to {} (--link-remap)", what, gone,
             path);
  links_.push_back(path);
  remap_file_path_entry r;
  r.set_orig_id(file_id);
  r.set_remap_id(link_id);
  r.set_remap_type(LINKED);
  remaps_.push_back(r);
  log::info("{}: its name {} was removed: linked to {} (--link-remap)", what, gone, path);
  return path;
}

void GhostFiles::write(const std::string& dir) {
  if (remaps_.empty()) return;
  std::vector<char> buf;
  for (auto& [key, g] : ghosts_) {
    const struct stat& st = g.st;
    ghost_file_entry e;
    e.set_uid(st.st_uid);
    e.set_gid(st.st_gid);
    e.set_mode(st.st_mode);
    // The kernel's encoding of a device number, as CRIU stores it.
    e.set_dev((major(st.st_dev) << 20) | minor(st.st_dev));
    e.set_ino(st.st_ino);
    e.mutable_atim()->set_tv_sec(static_cast<uint64_t>(st.st_atim.tv_sec));
    e.mutable_atim()->set_tv_usec(static_cast<uint64_t>(st.st_atim.tv_nsec / 1000));
    e.mutable_mtim()->set_tv_sec(static_cast<uint64_t>(st.st_mtim.tv_sec));
    e.mutable_mtim()->set_tv_usec(static_cast<uint64_t>(st.st_mtim.tv_nsec / 1000));
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) e.set_rdev(static_cast<uint32_t>(st.st_rdev));
    if (S_ISLNK(st.st_mode)) e.set_symlnk_target(g.target);
    std::string name = fmt::format("ghost-file-{:x}.img", g.id);
    image::Writer w(dir, name, image::magic::kGhostFile);
    if (!S_ISREG(st.st_mode)) {
      w.put(e);
      w.close();
      continue;
    }
    e.set_chunks(true);
    e.set_size(static_cast<uint64_t>(st.st_size));
    w.put(e);
    // Only the data: holes stay holes.
    off_t off = 0;
    const off_t size = st.st_size;
    while (off < size) {
      off_t data = ::lseek(g.fd.get(), off, SEEK_DATA);
      if (data < 0 && errno == ENXIO) break;
      if (data < 0) fail_sys("cannot find the data of ghost file {}", g.id);
      off_t hole = ::lseek(g.fd.get(), data, SEEK_HOLE);
      if (hole < 0) hole = size;
      hole = std::min(hole, size);
      ghost_chunk_entry c;
      c.set_off(static_cast<uint64_t>(data));
      c.set_len(static_cast<uint64_t>(hole - data));
      w.put(c);
      for (off_t p = data; p < hole;) {
        size_t want = static_cast<size_t>(std::min<off_t>(hole - p, 1 << 20));
        buf.resize(want);
        ssize_t n = ::pread(g.fd.get(), buf.data(), want, p);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail_sys("cannot read ghost file {} at offset {}", g.id, p);
        w.put_raw(buf.data(), static_cast<size_t>(n));
        p += n;
      }
      off = hole;
    }
    w.close();
  }
  image::Writer r(dir, "remap-fpath.img", image::magic::kRemapFpath);
  for (const auto& e : remaps_) r.put(e);
  r.close();
}

}  // namespace cryo::dump
