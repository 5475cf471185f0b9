// pidfds: an open file on a process of the tree, live, a zombie, or already reaped (its
// "Pid:" in fdinfo is then -1). Which process is told by PID: restore gives the tree the same
// PIDs. pidfds on processes outside the tree and on single threads (PIDFD_THREAD) are refused,
// as CRIU does.
#include <fcntl.h>

#include <cstdlib>
#include <string>

#include "base/error.h"
#include "dump/event_files.h"
#include "dump/file_kind.h"
#include "dump/files.h"

namespace cryo::dump {
namespace {

// The number on fdinfo line "NAME:\t..." of a pidfd; fails when there is none.
long fdinfo_number(const FdContext& c, const std::string& name) {
  const std::string key = "\n" + name + ":";
  const std::string text = "\n" + c.fdinfo;
  size_t at = text.find(key);
  if (at == std::string::npos)
    fail("{}: its fdinfo has no {} line: is it a pidfd?", c.where(), name);
  return std::strtol(text.c_str() + at + key.size(), nullptr, 10);
}

class PidfdKind : public FileKind {
 public:
  explicit PidfdKind(FileTable& t) : table_(t) {}
  fd_types type() const override { return PIDFD; }
  bool claims(FdContext& c) override {
    return c.link == "anon_inode:[pidfd]" || c.link.rfind("pidfd:", 0) == 0;
  }
  void dump(FdContext& c, uint32_t id, file_entry* e) override {
    if (c.flags & O_EXCL)
      fail("{}: a pidfd on a single thread (PIDFD_THREAD) is not supported (nor by CRIU)",
           c.where());
    const long pid = fdinfo_number(c, "Pid");
    if (pid == 0)
      fail("{}: the pidfd's process is in a PID namespace the task cannot see", c.where());
    if (pid > 0 && !table_.options().in_tree(static_cast<pid_t>(pid)))
      fail(
          "{}: a pidfd on process {}, which is not in the dumped tree: dump the tree that "
          "holds both",
          c.where(), pid);
    auto* p = e->mutable_pidfd();
    p->set_id(id);
    p->set_ino(static_cast<uint32_t>(c.st.st_ino));
    p->set_flags(c.flags & ~static_cast<uint32_t>(O_ACCMODE));
    p->set_nspid(static_cast<int32_t>(pid));
    zero_fown(p->mutable_fown());
  }

 private:
  FileTable& table_;
};

}  // namespace

std::unique_ptr<FileKind> make_pidfd_kind(FileTable& t) {
  return std::make_unique<PidfdKind>(t);
}

}  // namespace cryo::dump
