#include "restore/lazy.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <vector>

#include "arch/x86_64/regs.h"
#include "base/error.h"
#include "base/log.h"
#include "infect/fd_transfer.h"
#include "kernel/syscalls.h"
#include "kernel/userfaultfd.h"
#include "pages/lazy.h"

namespace cryo::restore {
namespace {

constexpr uint64_t kFeatures = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP |
                               UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP;

// Present (or swapped) pages of [start, end) of task `pid`, as ranges: one PAGEMAP_SCAN call
// for a whole mapping that has none, which is the common case.
std::vector<std::pair<uint64_t, uint64_t>> present(int pagemap, pid_t pid, uint64_t start,
                                                   uint64_t end) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  kernel::PmScanQuery q;
  q.anyof = kernel::kPageIsPresent | kernel::kPageIsSwapped;
  const int rc = kernel::pagemap_scan(
      pagemap, start, end, q, [&](uint64_t s, uint64_t e, uint64_t) { out.emplace_back(s, e); });
  if (rc == kernel::kPmScanStuck)
    fail("task {}: PAGEMAP_SCAN of {:#x} made no progress", pid, start);
  if (rc) {
    errno = rc;
    fail_sys("task {}: cannot scan its pages at {:#x}-{:#x} (PAGEMAP_SCAN)", pid, start, end);
  }
  return out;
}

}  // namespace

std::vector<PageChain::Run> eager_runs(const PageChain& chain, const mm_entry& mm) {
  return runs_by_laziness(chain, mm, false);
}

std::vector<PageChain::Run> runs_by_laziness(const PageChain& chain, const mm_entry& mm,
                                             bool want_lazy) {
  std::vector<PageChain::Run> out;
  int vi = 0;
  for (PageChain::Run r : chain.runs()) {
    const uint64_t end = r.vaddr + r.len;
    while (vi < mm.vmas_size() && mm.vmas(vi).end() <= r.vaddr) vi++;
    // Cut at the mappings it spans; keep the parts outside lazy ones.
    for (int k = vi; r.vaddr < end; k++) {
      uint64_t stop = end;
      bool lazy = false;
      if (k < mm.vmas_size() && mm.vmas(k).start() <= r.vaddr) {
        stop = std::min(end, mm.vmas(k).end());
        lazy = pages::lazy_vma(mm.vmas(k));
      } else if (k < mm.vmas_size()) {
        stop = std::min(end, mm.vmas(k).start());
        k--;
      }
      if (lazy == want_lazy) {
        if (!out.empty() && out.back().vaddr + out.back().len == r.vaddr &&
            out.back().data + out.back().len == r.data)
          out.back().len += stop - r.vaddr;
        else
          out.push_back({r.vaddr, stop - r.vaddr, r.data});
      }
      r.data += stop - r.vaddr;
      r.vaddr = stop;
    }
  }
  return out;
}

void refuse_on_source(const Plan& plan) {
  for (const TaskPlan& t : plan.tasks)
    for (const pagemap_entry& e : t.pages)
      if (pages::on_source(e))
        fail(
            "the images in {} are of a lazy dump: task {}'s pages at {:#x} are on the source "
            "(dump --lazy-pages): restore with --lazy-pages and a 'cryo lazy-pages --page-server' "
            "daemon connected to it",
            plan.dir, t.pid(), e.vaddr());
}

LazyRestore::LazyRestore(const std::string& work_dir) : path_(pages::socket_path(work_dir)) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path_.size() >= sizeof a.sun_path)
    fail("the lazy-pages socket path {} is too long for a unix socket: use a shorter -W or -D",
         path_);
  std::memcpy(a.sun_path, path_.c_str(), path_.size());
  sock_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock_) fail_sys("cannot create a unix socket");
  if (::connect(sock_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0)
    fail_sys(
        "--lazy-pages: cannot reach the lazy-pages daemon at {}: start 'cryo lazy-pages' with "
        "the same images and work directories first",
        path_);
  timeval tv{pages::kHandOverSeconds, 0};
  ::setsockopt(sock_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

void LazyRestore::create(RemoteTask& rt, const TaskPlan& t) {
  if (std::none_of(t.mm.vmas().begin(), t.mm.vmas().end(), pages::lazy_vma)) return;
  long fd = rt.syscall(SYS_userfaultfd, {O_CLOEXEC | O_NONBLOCK});
  if (fd < 0)
    fail_errno(static_cast<int>(-fd),
               "task {}: cannot create a userfaultfd in it for --lazy-pages (the kernel needs "
               "CONFIG_USERFAULTFD): restore without --lazy-pages",
               t.pid());
  Fd mine;
  try {
    mine = steal_fd(rt.tid(), static_cast<int>(fd), "userfaultfd");
  } catch (...) {
    rt.syscall(SYS_close, {static_cast<uint64_t>(fd)});
    throw;
  }
  rt.check("close", SYS_close, {static_cast<uint64_t>(fd)});
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = kFeatures;
  if (::ioctl(mine.get(), UFFDIO_API, &api) < 0)
    fail_sys("task {}: the kernel's userfaultfd lacks the events --lazy-pages needs", t.pid());
  uffds_[t.pid()] = std::move(mine);
}

void LazyRestore::hand_over(const Plan& plan, const std::function<RemoteTask&(size_t)>& task) {
  for (size_t i = 0; i < plan.tasks.size(); i++) {
    const TaskPlan& t = plan.tasks[i];
    auto it = uffds_.find(t.pid());
    if (it == uffds_.end()) continue;
    const pid_t pid = t.pid();
    Fd pagemap(::open(fmt::format("/proc/{}/pagemap", pid).c_str(), O_RDONLY | O_CLOEXEC));
    Fd mem(::open(fmt::format("/proc/{}/mem", pid).c_str(), O_RDWR | O_CLOEXEC));
    if (!pagemap || !mem) fail_sys("cannot open the memory of task {}", pid);
    uint64_t refilled = 0, dropped = 0;
    for (const vma_entry& v : t.mm.vmas()) {
      if (!pages::lazy_vma(v)) continue;
      // The kernel may have written there since it was mapped (the TID at a thread's
      // creation, an rseq area): such pages get the image's bytes now, and the daemon finds
      // them present; those whose bytes are on the source are dropped, for the daemon to fill.
      std::vector<std::pair<uint64_t, uint64_t>> local, remote;
      for (auto [s, e] : present(pagemap.get(), pid, v.start(), v.end())) {
        uint64_t at = s;
        if (t.page_chain)
          for (const auto& run : t.page_chain->runs()) {
            const uint64_t lo = std::max(at, run.vaddr), hi = std::min(e, run.vaddr + run.len);
            if (lo >= hi) continue;
            if (lo > at) remote.emplace_back(at, lo);
            local.emplace_back(lo, hi);
            at = hi;
          }
        if (at < e) remote.emplace_back(at, e);
      }
      if (!remote.empty()) {
        // Before the registration (after it, the task would wait for the daemon to read the
        // removal). The task's registers are final already: kept around the call.
        RemoteTask& rt = task(i);
        const arch::Regs regs = arch::get_regs(rt.tid());
        for (auto [s, e] : remote) {
          rt.check("madvise(MADV_DONTNEED)", SYS_madvise, {s, e - s, MADV_DONTNEED});
          dropped += (e - s) / kernel::kPageSize;
        }
        arch::set_regs(rt.tid(), regs);
      }
      uffdio_register r{};
      r.range.start = v.start();
      r.range.len = v.end() - v.start();
      r.mode = UFFDIO_REGISTER_MODE_MISSING;
      if (::ioctl(it->second.get(), UFFDIO_REGISTER, &r) < 0)
        fail_sys("task {}: cannot register mapping {:#x}-{:#x} with its userfaultfd", pid,
                 v.start(), v.end());
      if (!(r.ioctls & (1ULL << _UFFDIO_COPY)))
        fail("task {}: the kernel cannot fill mapping {:#x}-{:#x} by UFFDIO_COPY", pid, v.start(),
             v.end());
      for (auto [lo, hi] : local) {
        const PageChain::Run* run = nullptr;
        for (const auto& rn : t.page_chain->runs())
          if (rn.vaddr <= lo && hi <= rn.vaddr + rn.len) run = &rn;
        if (::pwrite(mem.get(), run->data + (lo - run->vaddr), hi - lo, static_cast<off_t>(lo)) !=
            static_cast<ssize_t>(hi - lo))
          fail_sys("cannot write the memory of task {} at {:#x}", pid, lo);
        refilled += (hi - lo) / kernel::kPageSize;
      }
    }
    if (refilled || dropped)
      log::info("task {}: lazy pages touched during the restore: {} written, {} dropped", pid,
                refilled, dropped);
    pages::send_task(sock_.get(), pid, it->second.get());
  }
  pages::send_task(sock_.get(), 0, -1);
  log::info("{} userfaultfd(s) handed to the lazy-pages daemon at {}", uffds_.size(), path_);
}

void LazyRestore::watch(const Plan& plan) {
  std::vector<pid_t> pids;
  for (const TaskPlan& t : plan.tasks)
    if (!t.zombie) pids.push_back(t.pid());
  // Twice forked: the restore's waits do not see it, and it outlives a detached restore.
  pid_t child = ::fork();
  if (child < 0) fail_sys("cannot start the watcher of the lazy-pages daemon (fork)");
  if (child > 0) {
    int st;
    while (::waitpid(child, &st, 0) < 0 && errno == EINTR) {
    }
    uffds_.clear();
    sock_.reset();
    return;
  }
  if (::fork() != 0) ::_exit(0);
  ::setsid();
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGTERM, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGQUIT, SIG_IGN);
  char c = 0;
  ssize_t n;
  do n = ::read(sock_.get(), &c, 1);
  while (n < 0 && errno == EINTR);
  if (n == 1 && c == pages::kDoneByte) ::_exit(0);
  for (pid_t p : pids) pages::kill_tree(p);
  log::error(
      "the lazy-pages daemon ended before every page was in: the restored tree (root {}) was "
      "killed, its memory could not be served",
      pids.empty() ? 0 : pids.front());
  ::_exit(1);
}

}  // namespace cryo::restore
