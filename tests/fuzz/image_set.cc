#include "image_set.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace cryo::fuzz {
namespace {

void write_at(int fd, const std::string& path, uint64_t off, const char* p, size_t n) {
  while (n) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail_sys("cannot write {}", path);
    p += w;
    off += static_cast<uint64_t>(w);
    n -= static_cast<size_t>(w);
  }
}

void copy_file(const std::string& from, const std::string& to) {
  Fd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) fail_sys("cannot open {}", from);
  Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out) fail_sys("cannot create {}", to);
  for (;;) {
    ssize_t n = ::copy_file_range(in.get(), nullptr, out.get(), nullptr, 1 << 30, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_sys("cannot copy {} to {}", from, to);
    if (n == 0) break;
  }
}

bool has_inventory(const std::string& dir) {
  return ::access((dir + "/inventory.img").c_str(), F_OK) == 0;
}

std::vector<std::string> subdirs(const std::string& dir) {
  std::vector<std::string> out;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) fail_sys("cannot open {}", dir);
  while (dirent* e = ::readdir(d.get())) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    struct stat st;
    if (::stat((dir + "/" + n).c_str(), &st) == 0 && S_ISDIR(st.st_mode))
      out.push_back(dir + "/" + n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Images directories in `root`: itself, or its subdirectories two levels down at most.

}  // namespace

std::string read_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) fail_sys("cannot open {}", path);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_sys("cannot read {}", path);
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

void write_file(const std::string& path, const std::string& data) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) fail_sys("cannot create {}", path);
  write_at(fd.get(), path, 0, data.data(), data.size());
}

void find_sets(const std::string& root, int depth, std::vector<std::string>& out) {
  if (has_inventory(root)) {
    out.push_back(root);
    return;
  }
  if (depth == 0) return;
  for (const auto& d : subdirs(root)) find_sets(d, depth - 1, out);
}

void remove_tree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) return;
  if (S_ISDIR(st.st_mode)) {
    std::vector<std::string> names;
    {
      std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(path.c_str()), ::closedir);
      if (!d) fail_sys("cannot open {}", path);
      while (dirent* e = ::readdir(d.get())) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
      }
    }
    for (const auto& n : names) remove_tree(path + "/" + n);
    if (::rmdir(path.c_str()) < 0) fail_sys("cannot remove {}", path);
  } else if (::unlink(path.c_str()) < 0) {
    fail_sys("cannot remove {}", path);
  }
}

void make_dir(const std::string& path) {
  // With its parents: a findings directory may be asked for before anything made its parent.
  size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    struct stat st;
    std::string parent = path.substr(0, slash);
    if (::stat(parent.c_str(), &st) < 0 && errno == ENOENT) make_dir(parent);
  }
  if (::mkdir(path.c_str(), 0700) < 0 && errno != EEXIST) fail_sys("cannot create {}", path);
}

ImageSet ImageSet::load(const std::string& dir, uint64_t keep_limit) {
  ImageSet set;
  set.dir_ = dir;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) fail_sys("cannot open images directory {}", dir);
  while (dirent* e = ::readdir(d.get())) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string path = dir + "/" + name;
    struct stat st;
    if (::stat(path.c_str(), &st) < 0) fail_sys("cannot stat {}", path);
    if (!S_ISREG(st.st_mode)) continue;
    ImageFile f;
    f.name = name;
    f.source = path;
    f.size = static_cast<uint64_t>(st.st_size);
    if (f.size <= keep_limit) f.data = read_file(path);
    set.files.push_back(std::move(f));
  }
  std::sort(set.files.begin(), set.files.end(),
            [](const ImageFile& a, const ImageFile& b) { return a.name < b.name; });
  if (set.files.empty()) fail("images directory {} holds no image", dir);
  return set;
}

ImageFile* ImageSet::find(const std::string& name) {
  for (ImageFile& f : files)
    if (f.name == name) return &f;
  return nullptr;
}

void ImageSet::write(const std::string& dir) const {
  for (const ImageFile& f : files) {
    const std::string path = dir + "/" + f.name;
    if (!f.changed) {
      if (::link(f.source.c_str(), path.c_str()) == 0) continue;
      if (errno != EXDEV && errno != EPERM && errno != EMLINK)
        fail_sys("cannot link {} to {}", f.source, path);
      copy_file(f.source, path);
      continue;
    }
    if (f.data) {
      write_file(path, *f.data);
      continue;
    }
    copy_file(f.source, path);
    Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) fail_sys("cannot open {}", path);
    for (const auto& [off, bytes] : f.patches)
      write_at(fd.get(), path, off, bytes.data(), bytes.size());
    if (f.resize && ::ftruncate(fd.get(), static_cast<off_t>(*f.resize)) < 0)
      fail_sys("cannot resize {}", path);
  }
}

}  // namespace cryo::fuzz
