#include "base/own_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>

#include "base/error.h"
#include "base/log.h"

namespace cryo {
namespace {

// What lstat found at a path, for messages.
std::string describe(const std::string& path, const struct stat& st) {
  if (S_ISLNK(st.st_mode)) {
    char target[PATH_MAX];
    ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
    return fmt::format("a symbolic link to '{}'", n < 0 ? "?" : std::string(target, n));
  }
  if (S_ISREG(st.st_mode))
    return fmt::format("a file of uid {}, mode {:04o}", st.st_uid, st.st_mode & 07777);
  return file_type_name(st.st_mode);
}

// Why an existing file is not cryo's own to reuse, or "" when it is.
std::string not_own(const std::string& path, const struct stat& st) {
  if (!S_ISREG(st.st_mode)) return describe(path, st);
  if (st.st_uid != ::geteuid())
    return fmt::format("{}, not of uid {} running cryo", describe(path, st), ::geteuid());
  if (st.st_nlink != 1) return fmt::format("a file with {} hard links", st.st_nlink);
  return "";
}

}  // namespace

std::string file_type_name(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "a regular file";
    case S_IFLNK:
      return "a symbolic link";
    case S_IFDIR:
      return "a directory";
    case S_IFIFO:
      return "a FIFO";
    case S_IFSOCK:
      return "a socket";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
  }
  return fmt::format("a file of type {:o}", mode & S_IFMT);
}

Fd create_new_file(const std::string& path, const std::string& what) {
  Fd fd(
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600));
  if (fd) return fd;
  int err = errno;
  struct stat st;
  if (err == EEXIST && ::lstat(path.c_str(), &st) == 0)
    fail(
        "{} {} already exists ({}): cryo creates it anew and never writes through or over an "
        "existing file; remove it and retry",
        what, path, describe(path, st));
  fail_errno(err, "cannot create {} {}", what, path);
}

Fd recreate_file(const std::string& path, const std::string& what) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode))
      fail("cannot create {} {}: a directory is in its place; remove it and retry", what, path);
    const std::string was = describe(path, st);
    // Unlinking a symlink removes the link, never what it points to.
    if (::unlink(path.c_str()) < 0 && errno != ENOENT)
      fail_sys("cannot remove {} left at the path of {} {}", was, what, path);
    log::debug("removed {} left at the path of {} {}", was, what, path);
  } else if (errno != ENOENT) {
    fail_sys("cannot look at the path of {} {}", what, path);
  }
  return create_new_file(path, what);
}

Fd open_own_file(const std::string& path, const std::string& what) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) {
    if (errno != ENOENT) fail_sys("cannot look at the path of {} {}", what, path);
    return create_new_file(path, what);
  }
  if (std::string why = not_own(path, st); !why.empty())
    fail(
        "{} {} exists and is {}: cryo reuses only a regular file of its own; remove it or choose "
        "another path",
        what, path, why);
  // O_NONBLOCK: should a FIFO be swapped in after the lstat, open must not wait for a reader.
  Fd fd(::open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd) fail_sys("cannot open {} {}", what, path);
  struct stat now;
  if (::fstat(fd.get(), &now) < 0) fail_sys("cannot stat {} {}", what, path);
  if (now.st_dev != st.st_dev || now.st_ino != st.st_ino || !not_own(path, now).empty())
    fail("{} {} was replaced while cryo opened it: retry", what, path);
  if (::ftruncate(fd.get(), 0) < 0) fail_sys("cannot truncate {} {}", what, path);
  if (::fchmod(fd.get(), 0600) < 0) fail_sys("cannot make {} {} private (mode 0600)", what, path);
  return fd;
}

}  // namespace cryo
