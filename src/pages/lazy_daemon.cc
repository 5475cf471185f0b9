#include "pages/lazy_daemon.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "base/deadline.h"
#include "base/error.h"
#include "base/fault.h"
#include "base/log.h"
#include "kernel/syscalls.h"
#include "pages/lazy.h"
#include "pageserver/connection.h"
#include "pageserver/protocol.h"
#include "restore/lazy.h"
#include "restore/plan.h"

namespace cryo::pages {
namespace {

constexpr uint64_t kPage = kernel::kPageSize;
// Pages filled at once: on a fault (the page and the next ones of its run), and by the
// background push between two looks at the faults. Small enough that a fault waits little.
constexpr uint64_t kFaultPages = 16;
constexpr uint64_t kLocalPushPages = 32;
constexpr uint64_t kRemotePushPages = 256;
// Seconds the daemon waits for the restore to connect.
constexpr int kAcceptSeconds = 600;

// The lazy pages of one dumped task: where each one's bytes are.
struct Image {
  struct Run {
    uint64_t vaddr, len;
    const char* data;  // nullptr: on the source
  };
  pid_t pid = 0;  // of the dumped task: the source's name for its pages
  std::vector<Run> runs;
  std::vector<uint64_t> bounds;  // where its mappings start and end, sorted
  // The end of the mapping holding `a`, as dumped: one UFFDIO_COPY fills one mapping.
  uint64_t bound_after(uint64_t a) const {
    auto it = std::upper_bound(bounds.begin(), bounds.end(), a);
    return it == bounds.end() ? UINT64_MAX : *it;
  }
  const Run* find(uint64_t a) const {
    auto it = std::upper_bound(runs.begin(), runs.end(), a,
                               [](uint64_t x, const Run& r) { return x < r.vaddr; });
    if (it == runs.begin() || a >= std::prev(it)->vaddr + std::prev(it)->len) return nullptr;
    return &*std::prev(it);
  }
};

// Address ranges of a live task still to fill: [start, end) gets the image's bytes at `src`.
class Todo {
 public:
  struct Span {
    uint64_t end, src;
  };
  void add(uint64_t s, uint64_t e, uint64_t src) {
    if (s < e) spans_[s] = {e, src};
  }
  bool empty() const { return spans_.empty(); }
  uint64_t pages() const {
    uint64_t n = 0;
    for (const auto& [s, sp] : spans_) n += (sp.end - s) / kPage;
    return n;
  }
  // The span holding `a`, as (start, span).
  std::optional<std::pair<uint64_t, Span>> find(uint64_t a) const {
    auto it = spans_.upper_bound(a);
    if (it == spans_.begin()) return std::nullopt;
    --it;
    if (a >= it->second.end) return std::nullopt;
    return *it;
  }
  std::pair<uint64_t, Span> first() const { return *spans_.begin(); }
  // Takes [s, e) out; returns what it held, as (start, span) parts.
  std::vector<std::pair<uint64_t, Span>> erase(uint64_t s, uint64_t e) {
    std::vector<std::pair<uint64_t, Span>> cut;
    auto it = spans_.upper_bound(s);
    if (it != spans_.begin()) --it;
    while (it != spans_.end() && it->first < e) {
      const uint64_t a = it->first;
      const Span sp = it->second;
      if (sp.end <= s) {
        ++it;
        continue;
      }
      it = spans_.erase(it);
      if (a < s) spans_[a] = {s, sp.src};
      if (sp.end > e) spans_[e] = {sp.end, sp.src + (e - a)};
      const uint64_t lo = std::max(a, s), hi = std::min(sp.end, e);
      cut.push_back({lo, {hi, sp.src + (lo - a)}});
      it = spans_.lower_bound(std::max(e, a + 1));
    }
    return cut;
  }

 private:
  std::map<uint64_t, Span> spans_;
};

struct Task {
  pid_t pid = 0;  // as restored; 0 for a child forked since (the kernel does not say)
  Fd uffd;
  std::shared_ptr<const Image> img;
  Todo todo;
  std::vector<uint64_t> pending;  // faults to serve again (the address space was changing)
  bool gone = false;
};

struct Counts {
  uint64_t faults = 0, zero = 0, pushed = 0, fetched = 0;
};

class Daemon {
 public:
  explicit Daemon(const DaemonOptions& o) : o_(o) {}
  int run();

 private:
  void load_images();
  Fd listen();
  void take_tasks(int conn);
  void serve();
  void drain(size_t ti);
  // Fills up to `max` pages of task ti from `addr` on (within one span and one image run).
  // False if the address space is changing (events to read first).
  bool fill(size_t ti, uint64_t addr, uint64_t max, bool fault);
  const char* fetch(const Image& img, uint64_t vaddr, uint64_t* len);
  const char* fetch_from_source(const Image& img, uint64_t vaddr, uint64_t* len);
  void zero(Task& t, uint64_t addr);
  void finish_source();
  void kill_all();

  const DaemonOptions& o_;
  std::map<pid_t, std::shared_ptr<Image>> images_;
  std::vector<std::unique_ptr<Task>> tasks_;
  std::optional<pageserver::Connection> source_;
  std::vector<char> buf_;
  Counts n_;
  std::unique_ptr<restore::Plan> plan_;
  // CRYO_FAULT=lazy-slow-push=MS: a pause after each piece pushed, for tests of a failure
  // during the post-copy.
  const long slow_ms_ = fault_number("lazy-slow-push");
};

void Daemon::load_images() {
  plan_ = std::make_unique<restore::Plan>(restore::load_plan(o_.dir, /*shell_job=*/true));
  bool remote = false;
  for (const restore::TaskPlan& t : plan_->tasks) {
    if (t.zombie) continue;
    auto img = std::make_shared<Image>();
    img->pid = t.pid();
    if (t.page_chain)
      for (const auto& r : restore::runs_by_laziness(*t.page_chain, t.mm, true))
        img->runs.push_back({r.vaddr, r.len, r.data});
    for (const pagemap_entry& e : t.pages) {
      if (!on_source(e)) continue;
      const uint64_t s = e.vaddr(), end = s + uint64_t{e.nr_pages()} * kPage;
      bool inside = false;
      for (const vma_entry& v : t.mm.vmas())
        if (v.start() <= s && end <= v.end()) inside = lazy_vma(v);
      if (!inside)
        fail(
            "image pagemap-{}.img: pages at {:#x} are marked as on the source but are not in a "
            "lazy mapping: the images are corrupt or not cryo's; dump again",
            t.pid(), s);
      img->runs.push_back({s, end - s, nullptr});
      remote = true;
    }
    for (const vma_entry& v : t.mm.vmas()) {
      img->bounds.push_back(v.start());
      img->bounds.push_back(v.end());
    }
    std::sort(img->bounds.begin(), img->bounds.end());
    std::sort(img->runs.begin(), img->runs.end(),
              [](const Image::Run& a, const Image::Run& b) { return a.vaddr < b.vaddr; });
    images_[t.pid()] = std::move(img);
  }
  if (remote && !o_.page_server)
    fail(
        "the images in {} are of a lazy dump (pages left on the source): give the source with "
        "--page-server --address ADDR --port PORT",
        o_.dir);
}

Fd Daemon::listen() {
  const std::string path = socket_path(o_.work_dir.empty() ? o_.dir : o_.work_dir);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path)
    fail("the lazy-pages socket path {} is too long for a unix socket: use a shorter -W or -D",
         path);
  std::memcpy(a.sun_path, path.c_str(), path.size());
  Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) fail_sys("cannot create a unix socket");
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0)
    fail_sys("cannot make the lazy-pages socket {}", path);
  if (::listen(s.get(), 1) < 0) fail_sys("cannot listen on {}", path);
  log::info("lazy-pages: waiting for 'cryo restore --lazy-pages' on {}", path);
  return s;
}

void Daemon::take_tasks(int conn) {
  timeval tv{kHandOverSeconds, 0};
  ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (;;) {
    pid_t pid;
    Fd uffd;
    if (!recv_task(conn, &pid, &uffd))
      fail(
          "the restore ended (or sent nothing for {} s) before handing over its tasks: nothing "
          "to serve",
          kHandOverSeconds);
    if (pid == 0) break;
    auto img = images_.find(pid);
    if (img == images_.end() || !uffd)
      fail("the restore handed over task {}, which the images in {} do not hold", pid, o_.dir);
    auto t = std::make_unique<Task>();
    t->pid = pid;
    t->uffd = std::move(uffd);
    t->img = img->second;
    for (const Image::Run& r : img->second->runs) t->todo.add(r.vaddr, r.vaddr + r.len, r.vaddr);
    log::info("lazy-pages: task {}: {} pages to fill", pid, t->todo.pages());
    tasks_.push_back(std::move(t));
  }
}

const char* Daemon::fetch(const Image& img, uint64_t vaddr, uint64_t* len) {
  try {
    return fetch_from_source(img, vaddr, len);
  } catch (const Error& e) {
    fail("the source of the lazy pages (cryo dump --lazy-pages at {}:{}) failed: {}", o_.address,
         o_.port, e.what());
  }
}

const char* Daemon::fetch_from_source(const Image& img, uint64_t vaddr, uint64_t* len) {
  pageserver::Header h;
  h.cmd = pageserver::kGet;
  h.nr_pages = *len / kPage;
  h.vaddr = vaddr;
  h.dst_id = static_cast<uint64_t>(img.pid);
  source_->send(&h, sizeof h);
  pageserver::Header r;
  source_->recv(&r, sizeof r);
  const uint32_t cmd = pageserver::command(r.cmd);
  if ((cmd != pageserver::kAddF && cmd != pageserver::kAdd) || r.vaddr != vaddr ||
      r.nr_pages == 0 || r.nr_pages > h.nr_pages)
    fail(
        "the source {} answered the request for {} pages of task {} at {:#x} with command "
        "{:#x}, {} pages at {:#x}: it does not serve these lazy pages",
        source_->peer(), h.nr_pages, img.pid, vaddr, r.cmd, r.nr_pages, r.vaddr);
  *len = r.nr_pages * kPage;
  if (buf_.size() < *len) buf_.resize(*len);
  source_->recv(buf_.data(), *len);
  n_.fetched += r.nr_pages;
  return buf_.data();
}

void Daemon::zero(Task& t, uint64_t addr) {
  uffdio_zeropage z{};
  z.range.start = addr;
  z.range.len = kPage;
  if (::ioctl(t.uffd.get(), UFFDIO_ZEROPAGE, &z) == 0) {
    n_.zero++;
    return;
  }
  if (errno == EEXIST) {
    uffdio_range w{addr, kPage};
    ::ioctl(t.uffd.get(), UFFDIO_WAKE, &w);
  } else if (errno == EAGAIN) {
    t.pending.push_back(addr);
  } else if (errno == ESRCH) {
    t.gone = true;
  } else if (errno != ENOENT) {
    fail_sys("task {}: cannot give a zero page at {:#x}", t.pid, addr);
  }
}

bool Daemon::fill(size_t ti, uint64_t addr, uint64_t max, bool fault) {
  Task& t = *tasks_[ti];
  auto span = t.todo.find(addr);
  if (!span) {
    if (fault) zero(t, addr);
    return true;
  }
  const auto [start, sp] = *span;
  const uint64_t src = sp.src + (addr - start);
  const Image::Run* run = t.img->find(src);
  if (!run) fail("internal: task {}: no image page for {:#x}", t.pid, addr);
  uint64_t len = std::min({max * kPage, sp.end - addr, run->vaddr + run->len - src,
                           std::max(kPage, t.img->bound_after(addr) - addr)});
  const char* data = run->data ? run->data + (src - run->vaddr) : fetch(*t.img, src, &len);
  uffdio_copy c{};
  c.dst = addr;
  c.src = reinterpret_cast<uint64_t>(data);
  c.len = len;
  int r = ::ioctl(t.uffd.get(), UFFDIO_COPY, &c);
  const int err = r < 0 ? errno : 0;
  const uint64_t done = r == 0 ? len : (c.copy > 0 ? static_cast<uint64_t>(c.copy) : 0);
  if (done) {
    t.todo.erase(addr, addr + done);
    n_.pushed += done / kPage;
  }
  if (r == 0) return true;
  log::debug("lazy-pages: task {}: UFFDIO_COPY of {} bytes at {:#x}: {} bytes, {}", t.pid, len,
             addr, done, std::strerror(err));
  switch (err) {
    case EAGAIN:  // a fork, mremap, munmap or madvise is under way: its event comes first
      if (fault) t.pending.push_back(addr + done);
      return false;
    case EEXIST: {  // already there (put back by the restore): only a waiter to wake
      const uint64_t at = addr + done;
      t.todo.erase(at, at + kPage);
      uffdio_range w{at, kPage};
      ::ioctl(t.uffd.get(), UFFDIO_WAKE, &w);
      return true;
    }
    case ENOENT:
      // The range crosses into another mapping (one copy fills one): page by page then.
      if (len - done > kPage) return fill(ti, addr + done, 1, fault);
      t.todo.erase(addr + done, addr + done + kPage);  // not mapped any more
      if (fault) zero(t, addr + done);
      return true;
    case ESRCH:  // the process is gone (exit or exec)
      t.gone = true;
      return true;
    default:
      fail_errno(err, "task {}: cannot fill {} bytes at {:#x} (UFFDIO_COPY)", t.pid, len, addr);
  }
}

void Daemon::drain(size_t ti) {
  uffd_msg msgs[16];
  for (;;) {
    ssize_t n = ::read(tasks_[ti]->uffd.get(), msgs, sizeof msgs);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0) fail_sys("task {}: cannot read its userfaultfd", tasks_[ti]->pid);
    for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof(uffd_msg)); i++) {
      const uffd_msg& m = msgs[i];
      Task& t = *tasks_[ti];
      switch (m.event) {
        case UFFD_EVENT_PAGEFAULT: {
          const uint64_t a = m.arg.pagefault.address & ~(kPage - 1);
          n_.faults++;
          fill(ti, a, kFaultPages, true);
          break;
        }
        case UFFD_EVENT_FORK: {
          // The child's address space is the parent's as it is now: the same pages to fill.
          auto c = std::make_unique<Task>();
          c->uffd.reset(static_cast<int>(m.arg.fork.ufd));
          c->img = t.img;
          c->todo = t.todo;
          log::info("lazy-pages: a child of task {} forked, {} pages to fill", t.pid,
                    c->todo.pages());
          tasks_.push_back(std::move(c));
          break;
        }
        case UFFD_EVENT_REMAP: {
          const uint64_t from = m.arg.remap.from, to = m.arg.remap.to, len = m.arg.remap.len;
          auto moved = t.todo.erase(from, from + len);
          t.todo.erase(to, to + len);
          for (const auto& [s, sp] : moved) t.todo.add(s - from + to, sp.end - from + to, sp.src);
          break;
        }
        case UFFD_EVENT_REMOVE:
        case UFFD_EVENT_UNMAP:
          // Dropped by the task: a later touch reads zeros, never the old bytes.
          t.todo.erase(m.arg.remove.start, m.arg.remove.end);
          break;
        default:
          log::warn("lazy-pages: task {}: unexpected userfaultfd event {}", t.pid, m.event);
      }
    }
  }
}

void Daemon::serve() {
  const auto t0 = std::chrono::steady_clock::now();
  size_t next = 0;  // the task the background push serves next
  for (;;) {
    // Gone tasks leave; the others' faults first, then one piece of the background push.
    std::erase_if(tasks_, [](const std::unique_ptr<Task>& t) { return t->gone; });
    bool todo = false, pending = false;
    for (const auto& t : tasks_) {
      todo |= !t->todo.empty();
      pending |= !t->pending.empty();
    }
    if (!todo && !pending) break;
    std::vector<pollfd> fds;
    for (const auto& t : tasks_) fds.push_back({t->uffd.get(), POLLIN, 0});
    int r = ::poll(fds.data(), fds.size(), todo ? 0 : 10);
    if (r < 0 && errno != EINTR) fail_sys("cannot wait for page faults");
    const size_t ntasks = tasks_.size();  // a fork adds tasks while draining
    for (size_t i = 0; i < ntasks; i++)
      if (r > 0 && (fds[i].revents & POLLIN)) drain(i);
    for (size_t i = 0; i < tasks_.size(); i++) {
      std::vector<uint64_t> again;
      again.swap(tasks_[i]->pending);
      for (uint64_t a : again) fill(i, a, kFaultPages, true);
    }
    if (!todo || tasks_.empty()) continue;
    for (size_t k = 0; k < tasks_.size(); k++) {
      size_t i = (next + k) % tasks_.size();
      Task& t = *tasks_[i];
      if (t.todo.empty() || t.gone) continue;
      const uint64_t at = t.todo.first().first;
      const Image::Run* run = t.img->find(t.todo.first().second.src);
      fill(i, at, run && run->data ? kLocalPushPages : kRemotePushPages, false);
      next = i + 1;
      if (slow_ms_ > 0) ::usleep(static_cast<useconds_t>(slow_ms_) * 1000);  // tests' fault
      break;
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log::info(
      "lazy-pages: every page is in after {:.3f} s: {} pages filled ({} fetched from the "
      "source), {} faults served, {} zero pages",
      s, n_.pushed, n_.fetched, n_.faults, n_.zero);
}

void Daemon::finish_source() {
  if (!source_) return;
  pageserver::Header h;
  h.cmd = pageserver::kClose;
  source_->send(&h, sizeof h);
  int32_t status = 0;
  source_->recv(&status, sizeof status);
  source_->end();
  if (status != 0) log::warn("lazy-pages: the source ended with status {}", status);
}

void Daemon::kill_all() {
  for (const auto& t : tasks_)
    if (t->pid) kill_tree(t->pid);
}

int Daemon::run() {
  load_images();
  if (o_.page_server) {
    source_.emplace(pageserver::connect_to(o_.address, o_.port));
    if (o_.tls.enabled) source_->start_tls(o_.tls, false, o_.tls.no_cn_verify ? "" : o_.address);
    log::info("lazy-pages: connected to the source {}", source_->peer());
  }
  Fd listener = listen();
  pollfd p{listener.get(), POLLIN, 0};
  int r;
  do r = ::poll(&p, 1, kAcceptSeconds * 1000);
  while (r < 0 && errno == EINTR);
  if (r < 0) fail_sys("cannot wait for the restore");
  if (r == 0)
    fail("no 'cryo restore --lazy-pages' connected within {} s: the daemon gives up",
         kAcceptSeconds);
  Fd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn) fail_sys("cannot accept the restore's connection");
  listener.reset();
  ::unlink(socket_path(o_.work_dir.empty() ? o_.dir : o_.work_dir).c_str());
  try {
    take_tasks(conn.get());
    serve();
    finish_source();
  } catch (const Error& e) {
    kill_all();
    fail("{}: the restored tree was killed, its memory cannot be served", e.what());
  }
  const char done = kDoneByte;
  if (::send(conn.get(), &done, 1, MSG_NOSIGNAL) != 1)
    log::warn("lazy-pages: the restore's watcher is gone: {}", std::strerror(errno));
  return 0;
}

}  // namespace

int run_daemon(const DaemonOptions& o) {
  Daemon d(o);
  return d.run();
}

}  // namespace cryo::pages
