#include "dump/ghost_files.h"

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "ghost-file.pb.h"
#include "image/image.h"

namespace cryo::dump {

std::string deleted_path(const std::string& link, const std::string& proc_path) {
  constexpr std::string_view kSuffix = " (deleted)";
  if (link.size() <= kSuffix.size() || link.front() != '/' ||
      link.compare(link.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0)
    return "";
  std::string gone = link.substr(0, link.size() - kSuffix.size());
  struct stat st, named;
  if (proc_path.empty() || ::stat(proc_path.c_str(), &st) < 0) return gone;
  if (::stat(link.c_str(), &named) == 0 && named.st_dev == st.st_dev && named.st_ino == st.st_ino)
    return "";  // a live file whose name ends in " (deleted)"
  if (!S_ISDIR(st.st_mode) && st.st_nlink > 0)
    fail(
        "{}: its name {} was removed but it keeps {} other hard link(s): not supported (a saved "
        "copy would part from them)",
        proc_path, gone, st.st_nlink);
  return gone;
}

void GhostFiles::add(uint32_t file_id, const std::string& proc_path, const std::string& what) {
  // What it is first: opening a device or FIFO could block or act on it.
  struct stat st;
  if (::stat(proc_path.c_str(), &st) < 0)
    fail_sys("{}: cannot stat the deleted file through {}", what, proc_path);
  if (!S_ISREG(st.st_mode))
    fail("{}: a deleted {} is not supported: only deleted regular files are saved", what,
         S_ISDIR(st.st_mode) ? "directory" : "special file");
  Fd fd(::open(proc_path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd) fail_sys("{}: cannot open the deleted file through {}", what, proc_path);
  if (::fstat(fd.get(), &st) < 0) fail_sys("{}: cannot stat the deleted file", what);
  if (static_cast<uint64_t>(st.st_size) > limit_)
    fail(
        "{}: the deleted file is {} bytes, over the ghost file limit of {} bytes: raise it with "
        "--ghost-limit SIZE",
        what, st.st_size, limit_);
  auto key = std::make_pair(st.st_dev, st.st_ino);
  auto it = ghosts_.find(key);
  if (it == ghosts_.end()) {
    Ghost g{next_id_++, std::move(fd), st};
    it = ghosts_.emplace(key, std::move(g)).first;
  }
  remap_file_path_entry r;
  r.set_orig_id(file_id);
  r.set_remap_id(it->second.id);
  r.set_remap_type(GHOST);
  remaps_.push_back(r);
  log::debug("{}: deleted file saved as ghost {}", what, it->second.id);
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
    e.set_chunks(true);
    e.set_size(static_cast<uint64_t>(st.st_size));
    std::string name = fmt::format("ghost-file-{:x}.img", g.id);
    image::Writer w(dir, name, image::magic::kGhostFile);
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
