// Files with a path: regular files, directories and device files opened by name, and memfds.
// A deleted regular file is saved whole (a ghost file); a memfd's content goes with the
// shared memory objects.
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

class RegularKind : public FileKind {
 public:
  explicit RegularKind(FileTable& t) : table_(t) {}
  fd_types type() const override { return REG; }
  bool claims(FdContext& c) override {
    // Anonymous inodes read as regular files: only a path makes a file of this kind.
    if (c.link.empty() || c.link[0] != '/') return false;
    return S_ISREG(c.st.st_mode) || S_ISCHR(c.st.st_mode) || S_ISDIR(c.st.st_mode);
  }
  void dump(FdContext& c, uint32_t id, file_entry* e) override {
    const std::string gone = deleted_path(c.link, c.proc_path);
    if (!gone.empty() && !S_ISREG(c.st.st_mode))
      fail("{}: a deleted directory or device is not supported yet", c.where());
    auto* r = e->mutable_reg();
    r->set_id(id);
    r->set_flags(c.flags);
    r->set_pos(c.info.pos);
    zero_fown(r->mutable_fown());
    r->set_name(gone.empty() ? c.link : gone);
    r->set_mnt_id(c.info.mnt_id);
    if (!gone.empty()) table_.ghosts().add(id, c.proc_path, c.where());
    if (S_ISREG(c.st.st_mode)) r->set_size(c.st.st_size);
    r->set_mode(c.st.st_mode);
  }

 private:
  FileTable& table_;
};

}  // namespace

std::unique_ptr<FileKind> make_memfd_kind(FileTable& t) {
  return std::make_unique<MemfdKind>(t);
}
std::unique_ptr<FileKind> make_regular_kind(FileTable& t) {
  return std::make_unique<RegularKind>(t);
}

}  // namespace cryo::dump
