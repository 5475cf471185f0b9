#include "pages/lazy_source.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <map>
#include <utility>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "image/image.h"
#include "image/pagemap.h"
#include "kernel/syscalls.h"
#include "pages/lazy.h"
#include "pageserver/connection.h"
#include "pageserver/protocol.h"

namespace cryo::pages {
namespace {

struct Lazy {
  Fd mem;                                          // /proc/PID/mem
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [start, end) left on the source
};

}  // namespace

void serve_lazy(const SourceOptions& o, const std::vector<pid_t>& pids, bool* connected) {
  *connected = false;
  std::map<pid_t, Lazy> tasks;
  uint64_t total = 0;
  for (pid_t pid : pids) {
    Lazy& l = tasks[pid];
    for (const pagemap_entry& e :
         image::read_pagemap(o.dir, fmt::format("pagemap-{}.img", pid)).runs)
      if (on_source(e)) {
        l.ranges.emplace_back(e.vaddr(), e.vaddr() + uint64_t{e.nr_pages()} * kernel::kPageSize);
        total += e.nr_pages();
      }
    // Through /proc/PID/mem: it reads whatever the protection.
    l.mem.reset(::open(fmt::format("/proc/{}/mem", pid).c_str(), O_RDONLY | O_CLOEXEC));
    if (!l.mem) fail_sys("cannot open /proc/{}/mem", pid);
  }
  uint16_t port = o.port;
  Fd listener = pageserver::listen_on(o.address, &port);
  log::user(log::kInfo,
            fmt::format("lazy pages: the images are complete; {} pages wait on port {} for "
                        "'cryo lazy-pages --page-server' (at most {} s)",
                        total, port, pageserver::kServerWaitSeconds));
  pollfd p{listener.get(), POLLIN, 0};
  int r;
  do r = ::poll(&p, 1, pageserver::kServerWaitSeconds * 1000);
  while (r < 0 && errno == EINTR);
  if (r <= 0)
    fail("no lazy-pages daemon connected to port {} within {} s", port,
         pageserver::kServerWaitSeconds);
  pageserver::Connection conn = pageserver::accept_one(listener.get());
  listener.reset();
  *connected = true;
  if (o.tls.enabled) conn.start_tls(o.tls, true, o.tls.no_cn_verify ? "" : o.address);
  log::info("lazy pages: serving {}", conn.peer());
  std::vector<char> buf;
  uint64_t served = 0, requests = 0;
  for (;;) {
    pageserver::Header h;
    if (!conn.recv_or_eof(&h, sizeof h))
      fail("the lazy-pages daemon {} hung up before it had every page ({} of {} sent)",
           conn.peer(), served, total);
    const uint32_t cmd = pageserver::command(h.cmd);
    if (cmd == pageserver::kClose || cmd == pageserver::kForceClose) {
      int32_t status = 0;
      conn.send(&status, sizeof status);
      conn.end();
      log::info("lazy pages: {} pages served in {} requests; the daemon has them all", served,
                requests);
      return;
    }
    if (cmd != pageserver::kGet)
      fail("the lazy-pages daemon {} sent command {:#x}, not a request for pages (PS_IOV_GET)",
           conn.peer(), h.cmd);
    auto t = tasks.find(static_cast<pid_t>(h.dst_id));
    const uint64_t len = h.nr_pages * kernel::kPageSize;
    bool lazy = false;
    if (t != tasks.end() && h.nr_pages > 0 && h.nr_pages <= (1u << 20) &&
        h.vaddr % kernel::kPageSize == 0)
      for (const auto& [s, e] : t->second.ranges)
        if (s <= h.vaddr && h.vaddr + len <= e) lazy = true;
    if (!lazy)
      fail(
          "the lazy-pages daemon {} asked for {} pages of task {} at {:#x}, which this dump did "
          "not leave on the source: it restores other images",
          conn.peer(), h.nr_pages, h.dst_id, h.vaddr);
    if (buf.size() < len) buf.resize(len);
    if (::pread(t->second.mem.get(), buf.data(), len, static_cast<off_t>(h.vaddr)) !=
        static_cast<ssize_t>(len))
      fail_sys("cannot read the memory of task {} at {:#x}", h.dst_id, h.vaddr);
    pageserver::Header a = h;
    a.cmd = pageserver::with_flags(pageserver::kAddF, image::kPePresent);
    conn.send(&a, sizeof a, true);
    conn.send(buf.data(), len);
    served += h.nr_pages;
    requests++;
  }
}

}  // namespace cryo::pages
