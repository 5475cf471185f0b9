#include "restore/ghost_files.h"

#include <fcntl.h>
#include <sys/stat.h>
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

void fill(int fd, const std::string& dir, uint32_t id, const std::string& path) {
  const std::string name = fmt::format("ghost-file-{:x}.img", id);
  const std::string where = printable(path);  // a name from the images
  image::Reader r(dir, name, image::magic::kGhostFile);
  ghost_file_entry g;
  if (!r.next(g)) fail("image {} is truncated: no entry", name);
  if (!S_ISREG(g.mode()))
    fail("image {}: ghost file of mode {:o} is not a regular file", name, g.mode());
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
  if (::fchown(fd, g.uid(), g.gid()) < 0)
    fail_sys("cannot give deleted file {} its owner {}:{}", where, g.uid(), g.gid());
  if (::fchmod(fd, g.mode() & 07777) < 0)
    fail_sys("cannot give deleted file {} its mode {:o}", where, g.mode() & 07777);
  timespec times[2] = {
      {static_cast<time_t>(g.atim().tv_sec()), static_cast<long>(g.atim().tv_usec() * 1000)},
      {static_cast<time_t>(g.mtim().tv_sec()), static_cast<long>(g.mtim().tv_usec() * 1000)}};
  if (g.has_atim() && g.has_mtim() && ::futimens(fd, times) < 0)
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
      // At its old name when that is free, so the tree sees the same "(deleted)" path.
      std::string path = r->name();
      Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (!fd && errno == EEXIST) {
        path = fmt::format("{}.cryo.{:x}.ghost", r->name(), ghost_id);
        fd.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      }
      if (!fd)
        fail_sys("cannot recreate deleted file {} at {} (its directory must exist)",
                 printable(r->name()), printable(path));
      struct stat st;
      if (::fstat(fd.get(), &st) < 0) fail_sys("cannot stat {}", printable(path));
      created_.push_back({path, st.st_dev, st.st_ino});
      fill(fd.get(), plan.dir, ghost_id, path);
      log::debug("deleted file {} recreated at {} from ghost {}", printable(r->name()),
                 printable(path), ghost_id);
      it = made.emplace(ghost_id, path).first;
    }
    r->set_name(it->second);
  }
}

void GhostFiles::remove() {
  for (const Made& m : created_) {
    struct stat st;
    if (::lstat(m.path.c_str(), &st) < 0 || st.st_dev != m.dev || st.st_ino != m.ino) continue;
    if (::unlink(m.path.c_str()) < 0 && errno != ENOENT)
      log::warn("cannot remove the temporary file {}: {}", m.path, std::strerror(errno));
  }
  created_.clear();
}

}  // namespace cryo::restore
