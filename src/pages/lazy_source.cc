#include "pages/lazy_source.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <chrono>
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

LazySource::LazySource(const std::string& dir, const std::vector<pid_t>& pids) {
  const auto t0 = std::chrono::steady_clock::now();
  std::map<pid_t, std::vector<std::pair<uint64_t, uint64_t>>> ranges;
  for (pid_t pid : pids)
    for (const pagemap_entry& e : image::read_pagemap(dir, fmt::format("pagemap-{}.img", pid)).runs)
      if (on_source(e)) {
        ranges[pid].emplace_back(e.vaddr(), e.vaddr() + uint64_t{e.nr_pages()} * kernel::kPageSize);
        total_ += e.nr_pages();
      }
  len_ = total_ * kernel::kPageSize;
  if (len_ == 0) return;
  void* m = ::mmap(nullptr, len_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) fail_sys("cannot map {} MiB to keep the lazy pages in", len_ >> 20);
  mem_ = static_cast<char*>(m);
  char* at = mem_;
  for (const auto& [pid, rs] : ranges) {
    Fd mem;  // for pages process_vm_readv cannot read (a mapping without PROT_READ)
    for (auto [s, e] : rs) {
      iovec local{at, e - s}, remote{reinterpret_cast<void*>(s), e - s};
      ssize_t n = ::process_vm_readv(pid, &local, 1, &remote, 1, 0);
      if (n != static_cast<ssize_t>(e - s)) {
        if (!mem) mem.reset(::open(fmt::format("/proc/{}/mem", pid).c_str(), O_RDONLY | O_CLOEXEC));
        if (!mem ||
            ::pread(mem.get(), at, e - s, static_cast<off_t>(s)) != static_cast<ssize_t>(e - s))
          fail_sys("cannot read the memory of task {} at {:#x}", pid, s);
      }
      tasks_[pid].push_back({s, e, at});
      at += e - s;
    }
  }
  log::info("lazy pages: {} pages kept for the lazy-pages daemon in {:.3f} s", total_,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

LazySource::~LazySource() {
  if (mem_) ::munmap(mem_, len_);
}

void LazySource::listen(const SourceOptions& o) {
  o_ = o;
  listener_ = pageserver::listen_on(o_.address, &o_.port);
}

void LazySource::serve() {
  const SourceOptions& o = o_;
  const uint16_t port = o.port;
  Fd listener = std::move(listener_);
  log::user(log::kInfo, fmt::format("lazy pages: {} pages wait on port {} for 'cryo lazy-pages "
                                    "--page-server' (at most {} s)",
                                    total_, port, pageserver::kServerWaitSeconds));
  pollfd p{listener.get(), POLLIN, 0};
  int r;
  do r = ::poll(&p, 1, pageserver::kServerWaitSeconds * 1000);
  while (r < 0 && errno == EINTR);
  if (r <= 0)
    fail("no lazy-pages daemon connected to port {} within {} s", port,
         pageserver::kServerWaitSeconds);
  pageserver::Connection conn = pageserver::accept_one(listener.get());
  listener.reset();
  if (o.tls.enabled) conn.start_tls(o.tls, true, o.tls.no_cn_verify ? "" : o.address);
  log::info("lazy pages: serving {}", conn.peer());
  uint64_t served = 0, requests = 0;
  for (;;) {
    pageserver::Header h;
    if (!conn.recv_or_eof(&h, sizeof h))
      fail("the lazy-pages daemon ({}) hung up before it had every page ({} of {} sent)",
           conn.peer(), served, total_);
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
      fail("the lazy-pages daemon ({}) sent command {:#x}, not a request for pages (PS_IOV_GET)",
           conn.peer(), h.cmd);
    const uint64_t len = h.nr_pages * kernel::kPageSize;
    const char* data = nullptr;
    auto t = tasks_.find(static_cast<pid_t>(h.dst_id));
    if (t != tasks_.end() && h.nr_pages > 0 && h.nr_pages <= (1u << 20))
      for (const Range& rg : t->second)
        if (rg.start <= h.vaddr && h.vaddr + len <= rg.end) data = rg.copy + (h.vaddr - rg.start);
    if (!data)
      fail(
          "the lazy-pages daemon ({}) asked for {} pages of task {} at {:#x}, which this dump did "
          "not leave on the source: it restores other images",
          conn.peer(), h.nr_pages, h.dst_id, h.vaddr);
    pageserver::Header a = h;
    a.cmd = pageserver::with_flags(pageserver::kAddF, image::kPePresent);
    conn.send(&a, sizeof a, true);
    conn.send(data, len);
    served += h.nr_pages;
    requests++;
  }
}

}  // namespace cryo::pages
