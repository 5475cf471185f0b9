// Files with a path: regular files, directories, device files and symlinks opened by name
// (also O_PATH fds on any file), and memfds. A deleted file is saved as a ghost file (a
// regular file's content, another's mode, device or target), or kept by a new hard link
// (--link-remap); a memfd's content goes with the shared memory objects.
#include <fcntl.h>
#include <sys/stat.h>

#include "base/error.h"
#include "dump/event_files.h"
#include "dump/file_kind.h"
#include "dump/files.h"
#include "dump/ghost_files.h"

namespace cryo::dump {
namespace {

class MemfdKind : public FileKind {
 public:
  explicit MemfdKind(FileTable& t) : table_(t) {}
  fd_types type() const override { return MEMFD; }
  bool claims(FdContext& c) override {
    return S_ISREG(c.st.st_mode) && c.link.rfind("/memfd:", 0) == 0;
  }
  void dump(FdContext& c, uint32_t id, file_entry* e) override {
    auto* m = e->mutable_memfd();
    m->set_id(id);
    m->set_flags(c.flags);
    m->set_pos(c.info.pos);
    zero_fown(m->mutable_fown());
    m->set_inode_id(static_cast<uint32_t>(c.st.st_ino));
    table_.add_memfd_inode(c.pid, c.proc_path, c.link, c.st);
  }

 private:
  FileTable& table_;
};

// A /proc path under the directory of a task ("/proc/PID/..."): the PID, else 0.
pid_t proc_task_of(const std::string& path) {
  constexpr std::string_view kProc = "/proc/";
  if (path.compare(0, kProc.size(), kProc) != 0) return 0;
  size_t i = kProc.size(), end = i;
  while (end < path.size() && path[end] >= '0' && path[end] <= '9') end++;
  if (end == i || end - i > 9 || (end < path.size() && path[end] != '/')) return 0;
  return static_cast<pid_t>(std::stol(path.substr(i, end - i)));
}

class RegularKind : public FileKind {
 public:
  explicit RegularKind(FileTable& t) : table_(t) {}
  fd_types type() const override { return REG; }
  bool claims(FdContext& c) override {
    // Anonymous inodes read as regular files: only a path makes a file of this kind.
    if (c.link.empty() || c.link[0] != '/') return false;
    return S_ISREG(c.st.st_mode) || S_ISCHR(c.st.st_mode) || S_ISDIR(c.st.st_mode) ||
           S_ISBLK(c.st.st_mode) || S_ISLNK(c.st.st_mode);
  }
  void dump(FdContext& c, uint32_t id, file_entry* e) override {
    auto* r = e->mutable_reg();
    r->set_id(id);
    r->set_flags(c.flags);
    r->set_pos(c.info.pos);
    zero_fown(r->mutable_fown());
    r->set_mnt_id(c.info.mnt_id);
    // A file of a task's /proc directory is opened again at its path: the task has the same
    // PID after restore, so it must be one of the tree.
    if (pid_t owner = proc_task_of(c.link); owner && !table_.options().in_tree(owner))
      fail(
          "{}: a file of task {}'s /proc directory, which is not in the dumped tree: it "
          "would name another process after restore",
          c.where(), owner);
    r->set_name(table_.remap_deleted(id, c.link, c.proc_path, c.where()));
    if (S_ISREG(c.st.st_mode)) r->set_size(c.st.st_size);
    r->set_mode(c.st.st_mode);
  }

 protected:
  FileTable& table_;
};

// An O_PATH fd names a file without opening it: whatever the file is (a FIFO, a socket
// file, a symlink with O_NOFOLLOW, a device), it is found again by its path. Asked before
// the kinds that would open the object (FIFO, terminal).
class PathKind : public RegularKind {
 public:
  using RegularKind::RegularKind;
  bool claims(FdContext& c) override {
    return (c.flags & O_PATH) && !c.link.empty() && c.link[0] == '/' &&
           c.link.rfind("/memfd:", 0) != 0;
  }
};

}  // namespace

std::unique_ptr<FileKind> make_memfd_kind(FileTable& t) {
  return std::make_unique<MemfdKind>(t);
}
std::unique_ptr<FileKind> make_path_kind(FileTable& t) {
  return std::make_unique<PathKind>(t);
}
std::unique_ptr<FileKind> make_regular_kind(FileTable& t) {
  return std::make_unique<RegularKind>(t);
}

}  // namespace cryo::dump
