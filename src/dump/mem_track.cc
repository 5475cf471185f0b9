#include "dump/mem_track.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "arch/x86_64/regs.h"
#include "base/error.h"
#include "base/log.h"
#include "dump/core.h"
#include "image/image.h"
#include "image/pagemap.h"
#include "infect/fd_transfer.h"
#include "infect/gadgets.h"
#include "infect/probe.h"
#include "kernel/syscalls.h"
#include "kernel/userfaultfd.h"
#include "pagemap.pb.h"
#include "pageserver/client.h"

namespace cryo::dump {
namespace {

// --- sorted page ranges ---

void append(PageRanges& r, uint64_t s, uint64_t e) {
  if (s >= e) return;
  if (!r.empty() && r.back().second >= s)
    r.back().second = std::max(r.back().second, e);
  else
    r.emplace_back(s, e);
}

PageRanges intersect(const PageRanges& a, const PageRanges& b) {
  PageRanges out;
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    uint64_t lo = std::max(a[i].first, b[j].first), hi = std::min(a[i].second, b[j].second);
    append(out, lo, hi);
    if (a[i].second < b[j].second)
      i++;
    else
      j++;
  }
  return out;
}

// --- the kernel side ---

// A mapping whose changes are tracked: private and writable memory of the task itself, not
// the vDSO or another kernel object (the kernel refuses a device mapping: EINVAL). Any other
// private mapping has all its pages dumped every time.
bool trackable(const proc::Vma& v) {
  if (v.shared || !v.w) return false;
  return v.path.empty() || v.path == "[heap]" || v.path == "[stack]" || v.path[0] == '/';
}

// One walk of a tracked mapping's page tables (PAGEMAP_SCAN): the pages a dump copies (as
// dump/image_workers.cc's pagemap reading picks them: present or swapped, not the zero page,
// and of a file mapping not the file's own) that were not written since they were last
// write-protected go to `clean`; the written ones are protected again and counted in
// `written`. False when the mapping is not tracked by cryo's asynchronous userfaultfd (a
// mapping made, moved or remapped since: EPERM).
bool scan_clean(int pagemap, pid_t pid, const proc::Vma& v, PageRanges* clean, uint64_t* written) {
  kernel::PmScanQuery q;
  q.flags = kernel::kPmScanWpMatching | kernel::kPmScanCheckWpAsync;
  q.inverted = q.mask = kernel::kPageIsPfnZero | (v.path[0] == '/' ? kernel::kPageIsFile : 0);
  q.anyof = kernel::kPageIsPresent | kernel::kPageIsSwapped;
  q.ret = kernel::kPageIsWritten;
  const int rc = kernel::pagemap_scan(pagemap, v.start, v.end, q,
                                      [&](uint64_t s, uint64_t e, uint64_t categories) {
                                        if (categories & kernel::kPageIsWritten)
                                          *written += (e - s) / kernel::kPageSize;
                                        else
                                          append(*clean, s, e);
                                      });
  if (rc == EPERM) return false;
  if (rc == kernel::kPmScanStuck)
    fail("task {}: PAGEMAP_SCAN of {:#x}-{:#x} made no progress", pid, v.start, v.end);
  if (rc) {
    errno = rc;
    fail_sys("task {}: cannot scan its pages at {:#x}-{:#x} (PAGEMAP_SCAN)", pid, v.start, v.end);
  }
  return true;
}

[[noreturn]] void refuse_foreign(pid_t pid, const std::string& what) {
  fail(
      "task {} {}: cryo tracks memory changes with a userfaultfd of its own, and a mapping can "
      "have only one. A task using userfaultfd cannot be pre-dumped (dump it without "
      "--track-mem/--prev-images-dir); if it is a cryo chain still tracked, continue that "
      "chain with --prev-images-dir of its last dump, or let its holder expire",
      pid, what);
}

// A userfaultfd open in the task is its own.
void refuse_own_uffd_fd(pid_t pid) {
  const std::string dir = fmt::format("/proc/{}/fd", pid);
  DIR* d = ::opendir(dir.c_str());
  if (!d) fail_sys("cannot list {}", dir);
  std::unique_ptr<DIR, int (*)(DIR*)> own(d, ::closedir);
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char link[64] = {};
    if (::readlinkat(::dirfd(d), e->d_name, link, sizeof link - 1) < 0) continue;
    if (std::strcmp(link, "anon_inode:[userfaultfd]") == 0)
      refuse_foreign(pid, fmt::format("has a userfaultfd open (fd {})", e->d_name));
  }
}

// --- the holder ---

constexpr uint32_t kMagic = 0x6372796d;  // "cryo memtrack"
enum Kind : uint32_t { kAsk = 1, kTask, kEnd, kWrongDir, kTaken };
struct Msg {
  uint32_t magic = kMagic;
  uint32_t kind = 0;
  int32_t pid = 0;
  uint32_t pad = 0;
  uint64_t a = 0, b = 0;  // kAsk: dev and inode of the images dir; kTask: start time
};

constexpr unsigned kDefaultHolderSeconds = 3600;
constexpr int kHolderIoSeconds = 10;

sockaddr_un abstract_addr(const std::string& name, socklen_t* len) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  a.sun_path[0] = '\0';
  std::memcpy(a.sun_path + 1, name.data(), std::min(name.size(), sizeof a.sun_path - 1));
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  return a;
}

void set_io_timeout(int fd) {
  timeval tv{kHolderIoSeconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

bool send_msg(int sock, const Msg& m, int fd = -1) {
  return send_fd(sock, &m, sizeof m, fd) == static_cast<ssize_t>(sizeof m);
}

// One message and the fd it carries (-1: none); false on a short or foreign message.
bool recv_msg(int sock, Msg* m, int* fd) {
  return recv_fd(sock, m, sizeof *m, fd) == static_cast<ssize_t>(sizeof *m) && m->magic == kMagic;
}

// The holder's life, in a process forked from cryo (which has threads): system calls only,
// on memory prepared before the fork. It serves one taker whose credentials are ours and
// who names the images dir it was made for, then exits; or exits at `deadline_s`
// (CLOCK_MONOTONIC seconds). Its death closes the userfaultfds, which ends the tracking.
[[noreturn]] void holder_main(int listener, const Msg* tasks, const int* fds, size_t n,
                              uint64_t dev, uint64_t ino, int64_t deadline_s) {
  for (;;) {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t left_ms = (deadline_s - now.tv_sec) * 1000;
    if (left_ms <= 0) ::_exit(0);
    pollfd p{listener, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left_ms, 60000)));
    if (r <= 0) continue;
    int c = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    ucred cr{};
    socklen_t crlen = sizeof cr;
    Msg ask;
    int ignored;
    if (::getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0 || cr.uid != ::geteuid()) {
      ::close(c);
      continue;
    }
    set_io_timeout(c);
    if (!recv_msg(c, &ask, &ignored) || ask.kind != kAsk) {
      ::close(c);
      continue;
    }
    if (ask.a != dev || ask.b != ino) {
      Msg no;
      no.kind = kWrongDir;
      send_msg(c, no);
      ::close(c);
      continue;
    }
    bool sent = true;
    for (size_t i = 0; sent && i < n; i++) sent = send_msg(c, tasks[i], fds[i]);
    Msg end;
    end.kind = kEnd;
    Msg ack;
    if (sent && send_msg(c, end) && recv_msg(c, &ack, &ignored) && ack.kind == kTaken) ::_exit(0);
    ::close(c);  // the taker went away before it took them: go on holding
  }
}

unsigned holder_seconds() {
  const char* s = std::getenv("CRYO_TRACK_MEM_TIMEOUT");
  if (!s || !*s) return kDefaultHolderSeconds;
  char* end;
  long v = std::strtol(s, &end, 10);
  if (*end || v <= 0 || v > 7 * 86400)
    fail("bad CRYO_TRACK_MEM_TIMEOUT '{}': give seconds, 1 to 604800", s);
  return static_cast<unsigned>(v);
}

}  // namespace

namespace {

// The entries an older dump into `dir` sent to a page server: this dump's own images (local,
// or records made anew) are what the next dump must go by.
void remove_sent_records(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) fail_sys("cannot list {}", dir);
  std::unique_ptr<DIR, int (*)(DIR*)> owned(d, ::closedir);
  const std::string_view prefix = pageserver::kSentPagemapPrefix;
  while (dirent* e = ::readdir(d))
    if (std::string_view(e->d_name).starts_with(prefix) &&
        ::unlinkat(::dirfd(d), e->d_name, 0) < 0 && errno != ENOENT)
      fail_sys("cannot remove the old {}/{}", dir, e->d_name);
}

}  // namespace

MemTracker::MemTracker(std::string dir, std::string prev, bool track)
    : dir_(std::move(dir)), track_(track) {
  if (track_) hold_seconds_ = holder_seconds();  // a bad value is refused before the freeze
  remove_sent_records(dir_);
  if (prev.empty()) return;
  prev_abs_ = prev[0] == '/' ? prev : dir_ + "/" + prev;
  struct stat ps, ds;
  if (::stat(prev_abs_.c_str(), &ps) < 0 || !S_ISDIR(ps.st_mode))
    fail_sys(
        "--prev-images-dir {}: {} is not a directory: give the images directory of the "
        "previous pre-dump, relative to the images directory -D (as CRIU takes it) or absolute",
        prev, prev_abs_);
  if (::stat(dir_.c_str(), &ds) == 0 && ds.st_dev == ps.st_dev && ds.st_ino == ps.st_ino)
    fail("--prev-images-dir {} is the images directory itself: give the previous dump's", prev);
  if (!image::exists(prev_abs_, "inventory.img"))
    fail(
        "--prev-images-dir {}: {} holds no inventory.img, so no complete pre-dump or dump: give "
        "the directory of a pre-dump that succeeded",
        prev, prev_abs_);
  // CRIU's link to the parent images, which restore follows for pages marked in the parent.
  const std::string link = dir_ + "/parent";
  struct stat ls;
  if (::lstat(link.c_str(), &ls) == 0) {
    if (!S_ISLNK(ls.st_mode))
      fail("{} exists and is not a symbolic link: remove it or dump into an empty directory", link);
    if (::unlink(link.c_str()) < 0) fail_sys("cannot remove the old link {}", link);
  }
  if (::symlink(prev.c_str(), link.c_str()) < 0) fail_sys("cannot create the link {}", link);
  take_from_holder(prev_abs_);
}

MemTracker::~MemTracker() = default;

void MemTracker::take_from_holder(const std::string& prev_abs) {
  const std::string file = prev_abs + "/" + kHolderFile;
  auto text = proc::try_read_file(file);
  auto untracked = [&](const std::string& why) {
    log::user(log::kWarn, fmt::format("{}: the memory of the tree is dumped whole", why));
  };
  if (!text) {
    untracked(fmt::format(
        "the previous images {} have no memory tracking left (that dump was made without "
        "--track-mem, or its tracking was taken by another dump)",
        prev_abs));
    return;
  }
  std::string name = *text;
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  const std::string prefix = "abstract-socket ";
  if (name.rfind(prefix, 0) != 0 || name.size() - prefix.size() > 100)
    fail("{} is corrupt (no socket name): remove it and dump with all pages", file);
  name.erase(0, prefix.size());
  Fd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!s) fail_sys("cannot create a unix socket");
  set_io_timeout(s.get());
  socklen_t len;
  sockaddr_un addr = abstract_addr(name, &len);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), len) < 0) {
    untracked(fmt::format(
        "the memory tracking of the images {} has ended (its holder process is gone: it "
        "expired or was killed)",
        prev_abs));
    ::unlink(file.c_str());
    return;
  }
  struct stat ps;
  if (::stat(prev_abs.c_str(), &ps) < 0) fail_sys("cannot stat {}", prev_abs);
  Msg ask;
  ask.kind = kAsk;
  ask.a = ps.st_dev;
  ask.b = ps.st_ino;
  if (!send_msg(s.get(), ask)) fail_sys("cannot ask the memory tracking holder of {}", prev_abs);
  std::map<pid_t, Task> got;
  for (;;) {
    Msg m;
    int fd;
    bool ok = recv_msg(s.get(), &m, &fd);
    Fd owned(fd);
    if (!ok) fail_sys("the memory tracking holder of {} did not answer properly", prev_abs);
    if (m.kind == kWrongDir) {
      untracked(fmt::format("{} was copied from the images its tracking belongs to", file));
      return;
    }
    if (m.kind == kEnd) break;
    if (m.kind != kTask || !owned)
      fail("the memory tracking holder of {} sent a bad message", prev_abs);
    Task& t = got[m.pid];
    t.starttime = m.a;
    t.uffd = std::move(owned);
  }
  Msg taken;
  taken.kind = kTaken;
  if (!send_msg(s.get(), taken))
    fail_sys("cannot tell the memory tracking holder of {} that its fds were taken", prev_abs);
  // From now on this dump owns the tracking: the chain goes on from it, not from prev.
  ::unlink(file.c_str());
  held_ = std::move(got);
  log::info("memory tracking of {} task(s) taken over from {}", held_.size(), prev_abs);
}

PageRanges MemTracker::parent_pages(pid_t pid) const {
  PageRanges r;
  // A dump through a page server left only the entries it sent here (and no local pagemap
  // of its own: one there is older).
  std::string name = pageserver::sent_pagemap_name(pid);
  if (!image::exists(prev_abs_, name)) name = fmt::format("pagemap-{}.img", pid);
  if (!image::exists(prev_abs_, name)) return r;
  std::vector<std::pair<uint64_t, uint64_t>> all;
  for (const pagemap_entry& e : image::read_pagemap(prev_abs_, name).runs)
    all.emplace_back(e.vaddr(), e.vaddr() + uint64_t{e.nr_pages()} * kernel::kPageSize);
  std::sort(all.begin(), all.end());
  for (const auto& [s, e] : all) append(r, s, e);
  return r;
}

Fd MemTracker::create_uffd(FrozenTask& t) {
  const pid_t pid = t.pid;
  FrozenThread& leader = t.threads[0];
  if (!leader.regs_saved) {
    leader.regs = arch::get_regs(leader.tid);
    abort_rseq(leader.tid, leader.regs);
    leader.regs_saved = true;
  }
  uint64_t mask = 0;
  if (ptrace(PTRACE_GETSIGMASK, leader.tid, sizeof mask, &mask) < 0)
    fail_sys("cannot read the signal mask of task {}", leader.tid);
  std::vector<proc::Vma> read;
  const std::vector<proc::Vma>& maps = t.maps.empty() ? (read = proc::read_maps(pid)) : t.maps;
  const Gadgets gadgets = find_gadgets(pid, maps);
  if (!gadgets.syscall)
    fail("task {}: no syscall instruction found in its executable mappings", pid);
  ThreadProbe probe(leader, gadgets, mask, &maps);
  long fd =
      probe.rt().syscall(SYS_userfaultfd, {O_CLOEXEC | O_NONBLOCK | kernel::kUffdUserModeOnly});
  if (fd < 0)
    fail_errno(static_cast<int>(-fd),
               "task {}: cannot create a userfaultfd in it to track its memory (a seccomp filter "
               "may forbid it): dump it without --track-mem",
               pid);
  Fd mine;
  try {
    mine = steal_fd(pid, static_cast<int>(fd), "userfaultfd");
  } catch (...) {
    probe.rt().syscall(SYS_close, {static_cast<uint64_t>(fd)});
    throw;
  }
  // The task never sees it: cryo's copy (and later the holder's) keeps it alive.
  probe.rt().check("close", SYS_close, {static_cast<uint64_t>(fd)});
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = kernel::kUffdFeatureWpAsync | kernel::kUffdFeatureWpUnpopulated;
  if (::ioctl(mine.get(), UFFDIO_API, &api) < 0)
    fail_sys(
        "task {}: the kernel has no asynchronous userfaultfd write-protection (Linux 6.7+) to "
        "track memory with: dump without --track-mem",
        pid);
  return mine;
}

void MemTracker::attach(FrozenTask& t) {
  const pid_t pid = t.pid;
  Attached& at = attached_[pid];
  auto h = held_.find(pid);
  if (h != held_.end()) {
    if (h->second.starttime == t.stat.starttime)
      at.held = &h->second;
    else
      log::info("task {}: not the process the previous dump tracked: all its pages are dumped",
                pid);
  }
  if (!at.held && !track_) return;
  refuse_own_uffd_fd(pid);
  if (track_) {
    Task& mine = tracked_[pid];
    mine.starttime = t.stat.starttime;
    mine.uffd = at.held ? std::move(at.held->uffd) : create_uffd(t);
  }
  at.active = true;
}

PageRanges MemTracker::track(FrozenTask& t, const std::vector<proc::Vma>& vmas) {
  attach(t);
  return track(t.pid, vmas, &t);
}

PageRanges MemTracker::track(pid_t pid, const std::vector<proc::Vma>& vmas, FrozenTask* frozen) {
  auto found = attached_.find(pid);
  if (found == attached_.end() || !found->second.active) return {};
  const bool was_held = found->second.held != nullptr;

  // Only mappings registered with cryo's userfaultfd all along were watched: one mapped,
  // moved or made again since has lost the registration (the scan says EPERM), and is dumped
  // whole; the others' pages not written since are the parent's, if still there.
  PageRanges clean;
  std::vector<const proc::Vma*> tracked, fresh;
  if (was_held) {
    Fd pagemap(::open(fmt::format("/proc/{}/pagemap", pid).c_str(), O_RDONLY | O_CLOEXEC));
    if (!pagemap) fail_sys("cannot open /proc/{}/pagemap", pid);
    uint64_t nwritten = 0;
    for (const proc::Vma& v : vmas) {
      if (!trackable(v)) continue;
      if (!scan_clean(pagemap.get(), pid, v, &clean, &nwritten)) {
        fresh.push_back(&v);
        continue;
      }
      tracked.push_back(&v);
    }
    log::info("task {}: {} pages written since the previous dump, {} mapping(s) new to it", pid,
              nwritten, fresh.size());
  } else {
    for (const proc::Vma& v : vmas)
      if (trackable(v)) fresh.push_back(&v);
  }

  // Without --track-mem the held fd stays where it is: closing it would unprotect every page
  // of the task (a walk of its page tables) while the tree is frozen.
  Fd& uffd = track_ ? tracked_[pid].uffd : found->second.held->uffd;
  bool recreated = !was_held, lost = false;
  // Registering a mapping with cryo's userfaultfd again changes nothing where cryo tracks it
  // already, and fails (EBUSY) where another userfaultfd does: the scan above could not tell.
  // With the tree running (a pre-dump), a mapping may vanish meanwhile: it is not tracked.
  auto reg = [&](const proc::Vma& v) -> bool {
    if (lost) return false;
    uffdio_register r{};
    r.range.start = v.start;
    r.range.len = v.end - v.start;
    r.mode = UFFDIO_REGISTER_MODE_WP;
    int rc = ::ioctl(uffd.get(), UFFDIO_REGISTER, &r);
    if (rc < 0 && errno == ESRCH && !recreated) {
      // The held context's address space is gone (the task ran execve): start anew, which
      // takes the frozen task; else the task is dumped whole from now on.
      if (!frozen) {
        log::info("task {}: ran execve: its memory is not tracked any more", pid);
        lost = true;
        return false;
      }
      uffd = create_uffd(*frozen);
      recreated = true;
      rc = ::ioctl(uffd.get(), UFFDIO_REGISTER, &r);
    }
    if (rc == 0) return true;
    if (errno == EBUSY)
      refuse_foreign(pid, fmt::format("has its mapping {:#x}-{:#x} registered with a userfaultfd",
                                      v.start, v.end));
    if (errno == EINVAL || !frozen) {
      log::debug("task {}: mapping {:#x}-{:#x} cannot be tracked ({}): dumped whole each time", pid,
                 v.start, v.end, std::strerror(errno));
      return false;
    }
    fail_sys("task {}: cannot register its mapping {:#x}-{:#x} for write tracking", pid, v.start,
             v.end);
  };
  for (const proc::Vma* v : tracked) reg(*v);
  if (track_)
    for (const proc::Vma* v : fresh) {
      if (!reg(*v)) continue;
      uffdio_writeprotect wp{};
      wp.range.start = v->start;
      wp.range.len = v->end - v->start;
      wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
      if (::ioctl(uffd.get(), UFFDIO_WRITEPROTECT, &wp) < 0) {
        if (frozen)
          fail_sys("task {}: cannot write-protect its mapping {:#x}-{:#x}", pid, v->start, v->end);
        // Gone meanwhile: unregistered, so the next dump writes what is there whole.
        uffdio_range gone{v->start, v->end - v->start};
        ::ioctl(uffd.get(), UFFDIO_UNREGISTER, &gone);
      }
    }
  if (lost) tracked_.erase(pid);
  // The parent image must hold them: a page it lacks is dumped, never guessed.
  return was_held ? intersect(clean, parent_pages(pid)) : PageRanges{};
}

void MemTracker::hand_over() {
  if (tracked_.empty()) return;
  const unsigned seconds = hold_seconds_;
  struct stat ds;
  if (::stat(dir_.c_str(), &ds) < 0) fail_sys("cannot stat {}", dir_);
  uint64_t rnd[2];
  if (::getrandom(rnd, sizeof rnd, 0) != sizeof rnd) fail_sys("getrandom");
  const std::string name = fmt::format("cryo-memtrack.{:016x}{:016x}", rnd[0], rnd[1]);
  Fd listener(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!listener) fail_sys("cannot create a unix socket");
  socklen_t len;
  sockaddr_un addr = abstract_addr(name, &len);
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len) < 0 ||
      ::listen(listener.get(), 4) < 0)
    fail_sys("cannot listen on the unix socket @{}", name);
  Fd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) fail_sys("cannot open /dev/null");

  // Everything the holder needs, made before the fork.
  std::vector<Msg> msgs;
  std::vector<int> fds;
  for (const auto& [pid, t] : tracked_) {
    Msg m;
    m.kind = kTask;
    m.pid = pid;
    m.a = t.starttime;
    msgs.push_back(m);
    fds.push_back(t.uffd.get());
  }
  std::vector<int> keep = fds;
  keep.push_back(listener.get());
  std::sort(keep.begin(), keep.end());
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const int64_t deadline = now.tv_sec + seconds;

  // The file first: the holder is then findable as soon as it runs.
  const std::string file = dir_ + "/" + kHolderFile;
  {
    Fd f(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    const std::string text = "abstract-socket " + name + "\n";
    if (!f || ::write(f.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
      fail_sys("cannot write {}", file);
  }
  pid_t child = ::fork();
  if (child < 0) fail_sys("cannot fork the memory tracking holder");
  if (child == 0) {
    // A grandchild in a session of its own: no terminal, no parent in the tree or in cryo's
    // caller to be signalled or waited by.
    ::setsid();
    pid_t holder = ::fork();
    if (holder != 0) ::_exit(holder < 0 ? 1 : 0);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::prctl(PR_SET_NAME, "cryo-memtrack");
    ::prctl(PR_SET_PDEATHSIG, 0);
    // Nobody but root may look into it (ptrace, pidfd_getfd): it holds the tree's uffds.
    ::prctl(PR_SET_DUMPABLE, 0);
    if (::chdir("/") < 0) ::_exit(1);
    for (int fd = 0; fd < 3; fd++) ::dup2(devnull.get(), fd);
    int from = 3;
    for (int k : keep) {
      if (k > from) ::syscall(SYS_close_range, from, k - 1, 0);
      from = std::max(from, k + 1);
    }
    ::syscall(SYS_close_range, from, ~0U, 0);
    holder_main(listener.get(), msgs.data(), fds.data(), msgs.size(), ds.st_dev, ds.st_ino,
                deadline);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    ::unlink(file.c_str());
    fail("the memory tracking holder could not be started");
  }
  log::info("memory tracking of {} task(s) held for the next dump for {} s (socket @{})",
            tracked_.size(), seconds, name);
}

}  // namespace cryo::dump
