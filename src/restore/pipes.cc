#include "restore/pipes.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "base/strings.h"
#include "restore/file_kind.h"
#include "restore/files.h"
#include "restore/mounts.h"

namespace cryo::restore {

// The planner refuses data known not to fit; this is for what it cannot know (e.g. a pipe
// kept small by the user's pipe-user-pages limits).
void put_pipe_data(int fd, const std::string& data, uint32_t pipe_id) {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    fail_sys("cannot make pipe {} non-blocking", pipe_id);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      int size = ::fcntl(fd, F_GETPIPE_SZ);
      fail(
          "pipe {} takes only {} of its {} saved bytes here (its size is {} bytes): its data "
          "cannot go back",
          pipe_id, off, data.size(), size);
    }
    if (n <= 0) fail_sys("cannot put the saved data back into pipe {}", pipe_id);
    off += static_cast<size_t>(n);
  }
}

namespace {

// cryo's own ends of the pipes (or FIFOs) of the tree, by pipe id.
class PipeEnds {
 public:
  explicit PipeEnds(bool fifo) : fifo_(fifo) {}
  // A new open file on pipe `pipe_id` with status flags `flags`; `r` names a FIFO's path.
  Fd open(const Plan& plan, uint32_t pipe_id, uint32_t flags, const reg_file_entry* r);

 private:
  struct Pipe {
    Fd rd, wr;             // cryo's ends; for a FIFO, rd is an O_RDWR handle keeping it open
    uint32_t to_open = 0;  // open files on it still to make: at 0 cryo's ends go
  };
  bool fifo_;
  bool counted_ = false;
  std::map<uint32_t, Pipe> pipes_;
};

Fd PipeEnds::open(const Plan& plan, uint32_t pipe_id, uint32_t flags, const reg_file_entry* r) {
  const bool fifo = fifo_;
  if (!counted_) {
    for (const auto& [id, f] : plan.files) {
      if (fifo && f.type() == FIFO) pipes_[f.fifo().pipe_id()].to_open++;
      if (!fifo && f.type() == PIPE) pipes_[f.pipe().pipe_id()].to_open++;
    }
    counted_ = true;
  }
  Pipe& p = pipes_[pipe_id];
  const std::string path = r ? r->name() : "";
  if (!p.rd) {
    if (fifo) {
      // O_RDWR never blocks on a FIFO and keeps it open while its ends are opened; checked to
      // still be a FIFO (a regular file there now would be taken as the pipe).
      p.rd = open_checked(tree_path(path, r->mnt_id()), O_RDWR, true, S_IFIFO,
                          fmt::format("FIFO {}", pipe_id));
    } else {
      int fds[2];
      if (::pipe2(fds, O_CLOEXEC) < 0) fail_sys("cannot create pipe {}", pipe_id);
      p.rd.reset(fds[0]);
      p.wr.reset(fds[1]);
    }
    auto it = plan.pipe_data.find({fifo, pipe_id});
    if (it != plan.pipe_data.end()) {
      int wfd = fifo ? p.rd.get() : p.wr.get();
      if (it->second.size && ::fcntl(wfd, F_SETPIPE_SZ, it->second.size) < 0)
        fail_sys("cannot size pipe {} to {} bytes", pipe_id, it->second.size);
      put_pipe_data(wfd, it->second.bytes, pipe_id);
    }
  }
  const int acc = static_cast<int>(flags & O_ACCMODE);
  Fd end;
  if (fifo) {
    end.reset(::open(path.c_str(), (acc | O_NONBLOCK | O_CLOEXEC)));
    if (!end) fail_sys("cannot open FIFO {}", printable(path));
    struct stat st;
    if (::fstat(end.get(), &st) < 0 || !S_ISFIFO(st.st_mode))
      fail("FIFO {}: {} is no longer a FIFO: restore needs the same file", pipe_id,
           printable(path));
  } else {
    // A new open file on the pipe (as a FIFO open would be), not a dup of cryo's end: each
    // open file keeps its own status flags. Never blocks: cryo holds both ends.
    int mine = acc == O_RDONLY ? p.rd.get() : p.wr.get();
    end.reset(::open(fmt::format("/proc/self/fd/{}", mine).c_str(), acc | O_CLOEXEC));
    if (!end) fail_sys("cannot open an end of pipe {}", pipe_id);
  }
  // A pipe end made here is a new open file, so its status flags are its own (O_ASYNC is set
  // by the task: see restore_files).
  if (::fcntl(end.get(), F_SETFL, flags & (O_NONBLOCK | O_APPEND | O_DIRECT)) < 0)
    fail_sys("cannot set the flags of pipe {}", pipe_id);
  if (p.to_open <= 1)
    pipes_.erase(pipe_id);
  else
    p.to_open--;
  return end;
}

class PipeKind : public FileKind {
 public:
  fd_types type() const override { return PIPE; }
  Fd open(const file_entry& f, FileSet& files) override {
    // --inherit-fd: this end is the caller's pipe (runc's stdio), as it is: its data and
    // flags are the caller's.
    const auto& inherit = files.plan().inherit_fds;
    if (auto it = inherit.find(fmt::format("pipe:[{}]", f.pipe().pipe_id())); it != inherit.end()) {
      Fd mine(::fcntl(it->second, F_DUPFD_CLOEXEC, 0));
      if (!mine)
        fail_sys("cannot use fd {} for pipe:[{}] (--inherit-fd)", it->second, f.pipe().pipe_id());
      log::info("pipe:[{}] is cryo's fd {} (--inherit-fd)", f.pipe().pipe_id(), it->second);
      return mine;
    }
    return ends_.open(files.plan(), f.pipe().pipe_id(), f.pipe().flags(), nullptr);
  }

 private:
  PipeEnds ends_{false};
};

class FifoKind : public FileKind {
 public:
  fd_types type() const override { return FIFO; }
  void check(Plan& plan, const file_entry& f, pid_t pid, int) const override {
    check_file(plan, plan.reg(f.fifo().regf_id(), "FIFO", pid), pid, "FIFO");
  }
  Fd open(const file_entry& f, FileSet& files) override {
    const reg_file_entry& r = files.plan().reg(f.fifo().regf_id(), "FIFO", 0);
    return ends_.open(files.plan(), f.fifo().pipe_id(), r.flags(), &r);
  }

 private:
  PipeEnds ends_{true};
};

}  // namespace

std::unique_ptr<FileKind> make_pipe_kind() {
  return std::make_unique<PipeKind>();
}
std::unique_ptr<FileKind> make_fifo_kind() {
  return std::make_unique<FifoKind>();
}

}  // namespace cryo::restore
