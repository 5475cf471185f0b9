// Open files on namespaces (/proc/PID/ns/NAME held open). cryo restores the tree into the
// namespaces it runs in, so such a file is given back as the same kind of namespace of the
// restored task: the one the task itself is in. A namespace file of another namespace
// (another container's, one kept alive only by the fd) is refused. The entry names the
// namespace by the id the task's ids-PID.img gives it, as CRIU's ns ids do.
#include <sched.h>
#include <sys/stat.h>

#include "base/error.h"
#include "dump/file_kind.h"
#include "dump/files.h"
#include "image/fdinfo.h"

namespace cryo::dump {
namespace {

// The id of task `ids`'s namespace of kind `cflag` (a CLONE_NEW* flag).
uint32_t ns_id_of(const task_kobj_ids_entry& ids, uint32_t cflag) {
  switch (cflag) {
    case CLONE_NEWNET:
      return ids.net_ns_id();
    case CLONE_NEWUTS:
      return ids.uts_ns_id();
    case CLONE_NEWIPC:
      return ids.ipc_ns_id();
    case CLONE_NEWPID:
      return ids.pid_ns_id();
    case CLONE_NEWNS:
      return ids.mnt_ns_id();
    case CLONE_NEWUSER:
      return ids.user_ns_id();
    case CLONE_NEWCGROUP:
      return ids.cgroup_ns_id();
    case image::kCloneNewTime:
      return ids.time_ns_id();
  }
  return 0;
}

class NsfsKind : public FileKind {
 public:
  explicit NsfsKind(FileTable& t) : table_(t) {}
  fd_types type() const override { return NS; }
  bool claims(FdContext& c) override {
    if (!S_ISREG(c.st.st_mode)) return false;
    size_t colon = c.link.find(":[");
    return colon != std::string::npos && c.link.back() == ']' &&
           image::ns_cflag(c.link.substr(0, colon)) != 0;
  }
  void dump(FdContext& c, uint32_t id, file_entry* e) override {
    const std::string name = c.link.substr(0, c.link.find(":["));
    // Only the namespace the task is in: cryo gives back cryo's own, which is the restored
    // task's (not one made for its children by unshare(CLONE_NEWPID/NEWTIME)).
    struct stat st;
    const bool own = ::stat(fmt::format("/proc/{}/ns/{}", c.pid, name).c_str(), &st) == 0 &&
                     st.st_dev == c.st.st_dev && st.st_ino == c.st.st_ino;
    if (!own)
      fail(
          "{}: an open file on a {} namespace the task is not in: cryo restores into the "
          "namespaces it runs in and cannot give this one back",
          c.where(), name);
    const uint32_t cflag = image::ns_cflag(name);
    const uint32_t ns_id = ns_id_of(table_.task_ids(c.pid), cflag);
    if (!ns_id) fail("{}: the task's {} namespace has no id in its images", c.where(), name);
    auto* n = e->mutable_nsf();
    n->set_id(id);
    n->set_ns_id(ns_id);
    n->set_ns_cflag(cflag);
    n->set_flags(c.flags);
  }

 private:
  FileTable& table_;
};

}  // namespace

std::unique_ptr<FileKind> make_nsfs_kind(FileTable& t) {
  return std::make_unique<NsfsKind>(t);
}

}  // namespace cryo::dump
