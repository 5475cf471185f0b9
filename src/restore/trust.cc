#include "restore/trust.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string_view>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "base/own_file.h"

namespace cryo::restore {
namespace {

constexpr const char* kWhy =
    "whoever can write the images chooses what the restored processes run and with which "
    "credentials";

// Why `st` could hold what someone other than `euid` wrote, or "" if it cannot.
std::string untrusted(const struct stat& st, uid_t euid) {
  if (st.st_uid != euid) return fmt::format("not owned by uid {} restoring", euid);
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return (st.st_mode & S_IWOTH) ? "writable by others" : "writable by its group";
  return "";
}

std::string fix_for(const std::string& path, const struct stat& st, uid_t euid) {
  std::string fix;
  if (st.st_uid != euid) fix = fmt::format("chown {} {}", euid, path);
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    fix += fmt::format("{}chmod go-w {}", fix.empty() ? "" : " && ", path);
  if (st.st_uid != euid) fix += " (after checking who wrote it)";
  return fix;
}

bool is_image_name(std::string_view n) {
  return n.ends_with(".img") || n.starts_with("stats-");
}

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};

}  // namespace

void check_images_trusted(const std::string& dir) {
  const uid_t euid = ::geteuid();
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) fail_sys("cannot open the images directory {}", dir);
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) fail_sys("cannot stat the images directory {}", dir);
  if (std::string why = untrusted(st, euid); !why.empty())
    fail(
        "images directory {} is {} (owner uid {}, mode {:04o}): {}, so cryo restores only from a "
        "directory owned by the restoring user and writable by it alone; fix: {}",
        dir, why, st.st_uid, st.st_mode & 07777, kWhy, fix_for(dir, st, euid));

  std::unique_ptr<DIR, DirCloser> d(::fdopendir(fd.get()));
  if (!d) fail_sys("cannot read the images directory {}", dir);
  fd.release();  // owned by d now
  int n = 0;
  for (;;) {
    errno = 0;
    struct dirent* de = ::readdir(d.get());
    if (!de) {
      if (errno != 0) fail_sys("cannot read the images directory {}", dir);
      break;
    }
    if (!is_image_name(de->d_name)) continue;
    std::string path = dir + "/" + de->d_name;
    if (::fstatat(::dirfd(d.get()), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT) continue;
      fail_sys("cannot stat image {}", path);
    }
    if (S_ISLNK(st.st_mode))
      fail(
          "image {} is a symbolic link: {}, and a link can point anywhere; fix: put the file "
          "itself in the images directory",
          path, kWhy);
    if (!S_ISREG(st.st_mode))
      fail("image {} is {}, not a regular file: fix: remove it", path, file_type_name(st.st_mode));
    if (std::string why = untrusted(st, euid); !why.empty())
      fail("image {} is {} (owner uid {}, mode {:04o}): {}; fix: {}", path, why, st.st_uid,
           st.st_mode & 07777, kWhy, fix_for(path, st, euid));
    n++;
  }
  log::debug("images directory {}: {} image(s), all owned by uid {} and writable by it alone", dir,
             n, euid);
}

}  // namespace cryo::restore
