#include "pageserver/server.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <tuple>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "dump/page_sink.h"
#include "image/image.h"
#include "kernel/syscalls.h"
#include "pageserver/connection.h"
#include "pageserver/protocol.h"

namespace cryo::pageserver {
namespace {

constexpr int kPipe = 1 << 20;  // bytes the pipe may hold (the default limit for root)

class Session {
 public:
  Session(Connection& conn, const std::string& dir)
      : conn_(conn), dir_(dir), sink_(dump::local_sink(dir)) {
    // Pages go from the socket to the image through a pipe, never through cryo's memory.
    int p[2];
    if (::pipe2(p, O_CLOEXEC) < 0) fail_sys("cannot create a pipe for the page server");
    pipe_r_.reset(p[0]);
    pipe_w_.reset(p[1]);
    ::fcntl(p[1], F_SETPIPE_SZ, kPipe);
    int size = ::fcntl(p[1], F_GETPIPE_SZ);
    pipe_size_ = size > 0 ? static_cast<size_t>(size) : 65536;
  }

  // True once the dump ended the protocol with CLOSE (not FORCE_CLOSE).
  bool run() {
    Header h;
    while (conn_.recv_or_eof(&h, sizeof(h))) {
      switch (command(h.cmd)) {
        case kOpen:
        case kOpen2: {
          open(h.dst_id);
          if (command(h.cmd) == kOpen2) {
            char has_parent = sink_->has_parent(kind_, id_) ? 1 : 0;
            conn_.send(&has_parent, 1);
          }
          break;
        }
        case kParent: {
          auto [kind, id] = decode(h.dst_id);
          int32_t answer = sink_->has_parent(kind, id) ? 1 : 0;
          conn_.send(&answer, sizeof(answer));
          break;
        }
        case kAdd:
          add(h, image::kPePresent);
          break;
        case kHole:
          add(h, image::kPeParent);
          break;
        case kAddF:
          add(h, flags(h.cmd));
          break;
        case kClose:
        case kForceClose: {
          int32_t status = 0;
          try {
            close_image();
          } catch (const Error& e) {
            log::error("{}", e.what());
            status = -1;
          }
          conn_.send(&status, sizeof(status));
          if (status != 0) fail("the pages received could not all be written in {}", dir_);
          log::info("page server: {} image(s), {} pages received from {}", images_, pages_,
                    conn_.peer());
          return h.cmd == kClose;
        }
        case kGet:
          fail(
              "{} asked for pages (PS_IOV_GET, lazy pages): cryo's page server only receives "
              "the pages of a dump",
              conn_.peer());
        default:
          fail(
              "{} sent an unknown command {:#x}: it does not speak CRIU 4.2's page-server "
              "protocol (CRIU 4.1 and older send other headers)",
              conn_.peer(), h.cmd);
      }
    }
    fail(
        "{} hung up before the end of the dump (no close command): the page images in {} are "
        "incomplete; dump again",
        conn_.peer(), dir_);
  }

 private:
  std::pair<dump::PagemapKind, uint64_t> decode(uint64_t dst) {
    uint64_t type = dst_type(dst);
    if (type == 0)
      fail("{} sent an unknown pagemap type {} (destination {:#x})", conn_.peer(), dst & 0xff, dst);
    return {type == kTypeTask ? dump::PagemapKind::kTask : dump::PagemapKind::kShmem,
            dst_image(dst)};
  }

  void open(uint64_t dst) {
    close_image();
    std::tie(kind_, id_) = decode(dst);
    image_ = sink_->open(kind_, id_, next_pages_id_++);
    dst_ = dst;
    off_ = 0;
    images_++;
    log::debug("page server: receiving {}", dump::pagemap_name(kind_, id_));
  }

  void close_image() {
    if (!image_) return;
    auto img = std::move(image_);
    img->close();
  }

  void add(const Header& h, uint32_t fl) {
    if (!image_ || dst_ != h.dst_id) open(h.dst_id);  // an old client's pages without OPEN
    if (h.nr_pages == 0 || h.nr_pages > UINT32_MAX || h.vaddr % kernel::kPageSize ||
        h.vaddr + h.nr_pages * kernel::kPageSize < h.vaddr)
      fail("{} sent a bad pagemap entry ({} pages at {:#x}) for {}", conn_.peer(), h.nr_pages,
           h.vaddr, dump::pagemap_name(kind_, id_));
    pagemap_entry e;
    e.set_vaddr(h.vaddr);
    e.set_nr_pages(static_cast<uint32_t>(h.nr_pages));
    e.set_flags(fl);
    image_->entry(e);
    if (!(fl & image::kPePresent)) return;
    uint64_t left = h.nr_pages * kernel::kPageSize;
    while (left > 0) {
      size_t n;
      if (conn_.tls()) {  // decrypted in cryo's memory: no splice
        if (buf_.empty()) buf_.resize(pipe_size_);
        n = static_cast<size_t>(std::min<uint64_t>(left, buf_.size()));
        conn_.recv(buf_.data(), n);
        image_->write(off_, buf_.data(), n);
      } else {
        n = conn_.recv_to_pipe(pipe_w_.get(), std::min<uint64_t>(left, pipe_size_));
        image_->write_from_pipe(off_, pipe_r_.get(), n);
      }
      off_ += n;
      left -= n;
    }
    pages_ += h.nr_pages;
  }

  Connection& conn_;
  std::string dir_;
  std::unique_ptr<dump::PageSink> sink_;
  std::unique_ptr<dump::PageImage> image_;
  dump::PagemapKind kind_ = dump::PagemapKind::kTask;
  uint64_t id_ = 0, dst_ = 0, off_ = 0;
  uint32_t next_pages_id_ = kServerPagesIdBase;
  uint64_t images_ = 0, pages_ = 0;
  Fd pipe_r_, pipe_w_;
  size_t pipe_size_ = 0;
  std::vector<char> buf_;
};

void become_daemon() {
  pid_t child = ::fork();
  if (child < 0) fail_sys("cannot start the page server in the background (fork)");
  if (child > 0) ::_exit(0);
  ::setsid();
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    for (int fd = 0; fd <= 2; fd++) ::dup2(null, fd);
    ::close(null);
  }
}

void report_ready(int status_fd) {
  if (status_fd < 0) return;
  char c = 0;
  ssize_t n;
  do n = ::write(status_fd, &c, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1) fail_sys("cannot write to --status-fd {}", status_fd);
  ::close(status_fd);
}

// The parent images of an incremental dump are the server's: the dump learns from OPEN2's
// answer whether this link leads to its image, as a dump into local images would.
void link_parent(const std::string& dir, const std::string& prev) {
  const std::string abs = prev[0] == '/' ? prev : dir + "/" + prev;
  struct stat st;
  if (::stat(abs.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
    fail_sys(
        "--prev-images-dir {}: {} is not a directory: give the directory where this server "
        "wrote the previous dump's pages, relative to -D or absolute",
        prev, abs);
  const std::string link = dir + "/parent";
  if (::lstat(link.c_str(), &st) == 0) {
    if (!S_ISLNK(st.st_mode))
      fail("{} exists and is not a symbolic link: remove it or use an empty directory", link);
    if (::unlink(link.c_str()) < 0) fail_sys("cannot remove the old link {}", link);
  }
  if (::symlink(prev.c_str(), link.c_str()) < 0) fail_sys("cannot create the link {}", link);
}

}  // namespace

int run_server(const ServerOptions& o) {
  if (::access(o.dir.c_str(), W_OK) < 0)
    fail_sys("cannot use the images directory {} (it must exist and be writable)", o.dir);
  if (!o.prev.empty()) link_parent(o.dir, o.prev);
  if (o.status_fd >= 0 && ::fcntl(o.status_fd, F_GETFD) < 0)
    fail("--status-fd {}: no such open descriptor", o.status_fd);
  std::optional<Connection> conn;
  Fd listener;
  if (o.ps_socket >= 0) {
    conn.emplace(adopt_socket(o.ps_socket));
  } else {
    uint16_t port = o.port;
    listener = listen_on(o.address, &port);
    log::info("page server: listening on {}:{}, images into {}",
              o.address.empty() ? "*" : o.address, port, o.dir);
  }
  if (o.daemon) become_daemon();
  report_ready(o.status_fd);
  if (!conn) {
    conn.emplace(accept_one(listener.get()));
    listener.reset();
  }
  if (o.tls.enabled) conn->start_tls(o.tls, true, o.tls.no_cn_verify ? "" : o.address);
  Session session(*conn, o.dir);
  // CLOSE: the dump hangs up next; waiting for it leaves the TIME_WAIT state on its side.
  if (session.run() && o.ps_socket < 0) conn->wait_hangup();
  conn->end();
  log::info("page server: done");
  return 0;
}

}  // namespace cryo::pageserver
