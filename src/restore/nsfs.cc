// Open files on namespaces, twins of dump/nsfs.cc: the tree is restored into cryo's own
// namespaces, so the file is opened again on cryo's namespace of that kind, which is the
// restored task's.
#include <fcntl.h>

#include "base/error.h"
#include "image/fdinfo.h"
#include "restore/file_kind.h"

namespace cryo::restore {
namespace {

class NsfsKind : public FileKind {
 public:
  fd_types type() const override { return NS; }
  void check(Plan&, const file_entry& f, pid_t pid, int fd) const override {
    if (image::ns_name(f.nsf().ns_cflag()).empty())
      fail("task {} fd {}: image files.img: namespace file {} is of unknown kind {:#x}", pid, fd,
           f.id(), f.nsf().ns_cflag());
  }
  Fd open(const file_entry& f, FileSet&) override {
    const std::string path = fmt::format("/proc/self/ns/{}", image::ns_name(f.nsf().ns_cflag()));
    Fd fd(::open(path.c_str(), static_cast<int>((f.nsf().flags() & ~O_CREAT) | O_CLOEXEC)));
    if (!fd) fail_sys("cannot open namespace file {} ({})", f.id(), path);
    return fd;
  }
};

}  // namespace

std::unique_ptr<FileKind> make_nsfs_kind() {
  return std::make_unique<NsfsKind>();
}

}  // namespace cryo::restore
