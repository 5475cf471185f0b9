#include "dump/pipes.h"

#include <fcntl.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "dump/event_files.h"
#include "dump/file_kind.h"
#include "dump/files.h"
#include "dump/ghost_files.h"
#include "image/image.h"

namespace cryo::dump {

void PipeData::add(FdContext& c, uint64_t ino, bool fifo) {
  if (!seen_.insert(ino).second) return;
  // A read end on the same pipe: cryo's copy of a read end, else a read end of our own
  // (opening the /proc link of a pipe behaves like opening a FIFO).
  Fd own;
  int end = -1;
  if ((c.flags & O_ACCMODE) == O_RDONLY) {
    end = c.copy();
  } else {
    own = c.reopen(O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (!own) fail_sys("{}: cannot open pipe {} for reading", c.where(), ino);
    end = own.get();
  }
  int size = ::fcntl(end, F_GETPIPE_SZ);
  if (size < 0) fail_sys("{}: cannot read the size of pipe {}", c.where(), ino);
  // tee() copies what the pipe holds into a pipe of ours without consuming it.
  if (!copy_rd_) {
    int tmp[2];
    if (::pipe2(tmp, O_CLOEXEC | O_NONBLOCK) < 0) fail_sys("cannot create a pipe");
    copy_rd_.reset(tmp[0]);
    copy_wr_.reset(tmp[1]);
  }
  if (size > copy_size_) {
    if (::fcntl(copy_wr_.get(), F_SETPIPE_SZ, size) < size)
      fail_sys("cannot size a pipe to {} bytes to copy pipe {}", size, ino);
    copy_size_ = size;
  }
  Saved s;
  s.fifo = fifo;
  ssize_t n = ::tee(end, copy_wr_.get(), static_cast<size_t>(size), SPLICE_F_NONBLOCK);
  if (n < 0 && errno != EAGAIN) fail_sys("{}: cannot copy the data of pipe {}", c.where(), ino);
  if (n > 0) {
    s.bytes.resize(static_cast<size_t>(n));
    size_t got = 0;
    while (got < s.bytes.size()) {
      ssize_t r = ::read(copy_rd_.get(), s.bytes.data() + got, s.bytes.size() - got);
      if (r <= 0) fail_sys("cannot read the copy of pipe {}", ino);
      got += static_cast<size_t>(r);
    }
  }
  s.entry.set_pipe_id(static_cast<uint32_t>(ino));
  s.entry.set_bytes(static_cast<uint32_t>(s.bytes.size()));
  s.entry.set_size(static_cast<uint32_t>(size));
  log::debug("pipe {}: {} bytes buffered, size {}", ino, s.bytes.size(), size);
  saved_.push_back(std::move(s));
}

void PipeData::write(const std::string& dir) {
  for (bool fifo : {false, true}) {
    bool any = false;
    for (const auto& s : saved_) any |= s.fifo == fifo;
    if (!any) continue;
    image::Writer w(dir, fifo ? "fifo-data.img" : "pipes-data.img",
                    fifo ? image::magic::kFifoData : image::magic::kPipesData);
    for (const auto& s : saved_) {
      if (s.fifo != fifo) continue;
      w.put(s.entry);
      w.put_raw(s.bytes.data(), s.bytes.size());
    }
    w.close();
  }
}

namespace {

// An end of an unnamed pipe: one entry per open file, the data once per pipe.
class PipeKind : public FileKind {
 public:
  fd_types type() const override { return PIPE; }
  bool claims(FdContext& c) override { return c.link.rfind("pipe:", 0) == 0; }
  void dump(FdContext& c, uint32_t id, file_entry* e) override {
    auto* p = e->mutable_pipe();
    p->set_id(id);
    p->set_pipe_id(c.link_inode());
    p->set_flags(c.flags);
    zero_fown(p->mutable_fown());
    data_.add(c, c.link_inode(), false);
  }
  void write(const DumpEnd& end) override { data_.write(end.dir); }

 private:
  PipeData data_;
};

// An end of a FIFO: its path is a reg-file entry of its own.
class FifoKind : public FileKind {
 public:
  explicit FifoKind(FileTable& t) : table_(t) {}
  fd_types type() const override { return FIFO; }
  bool claims(FdContext& c) override { return S_ISFIFO(c.st.st_mode); }
  void dump(FdContext& c, uint32_t id, file_entry* e) override {
    auto* f = e->mutable_fifo();
    f->set_id(id);
    f->set_pipe_id(static_cast<uint32_t>(c.st.st_ino));
    // A deleted FIFO's path is a ghost: made again (empty) at restore, its data put back.
    f->set_regf_id(table_.by_path(c.link, c.flags, c.proc_path));
    data_.add(c, c.st.st_ino, true);
  }
  void write(const DumpEnd& end) override { data_.write(end.dir); }

 private:
  FileTable& table_;
  PipeData data_;
};

}  // namespace

std::unique_ptr<FileKind> make_pipe_kind(FileTable&) {
  return std::make_unique<PipeKind>();
}
std::unique_ptr<FileKind> make_fifo_kind(FileTable& t) {
  return std::make_unique<FifoKind>(t);
}

}  // namespace cryo::dump
