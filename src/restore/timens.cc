#include "restore/timens.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "image/image.h"
#include "proc/proc.h"

namespace cryo::restore {
namespace {

constexpr int64_t kNsec = 1000000000;

int64_t clock_ns(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * kNsec + ts.tv_nsec;
}

// "CLOCKID SEC NSEC" as /proc/PID/timens_offsets takes it (nsec in [0, 1 s)).
std::string offset_line(clockid_t clock, int64_t ns) {
  int64_t sec = ns / kNsec, nsec = ns % kNsec;
  if (nsec < 0) sec -= 1, nsec += kNsec;
  return fmt::format("{} {} {}\n", static_cast<int>(clock), sec, nsec);
}

}  // namespace

TimeNamespaces::TimeNamespaces(const Plan& plan) {
  if (plan.tasks.empty() || !plan.tasks[0].ids.has_time_ns_id()) return;
  const uint32_t root = plan.tasks[0].ids.time_ns_id();
  made_[root] = fmt::format("/proc/{}/ns/time", ::getpid());  // the root shares cryo's
  for (const auto& t : plan.tasks) {
    if (t.zombie) continue;
    for (uint32_t id : {t.ids.time_ns_id(), t.ids.cryo_time_for_children_ns_id()}) {
      if (id == 0 || id == root || clocks_.contains(id)) continue;
      const std::string img = fmt::format("timens-{}.img", id);
      if (!image::exists(plan.dir, img))
        fail("image {} is missing: task {} is in time namespace {}", img, t.pid(), id);
      image::read_one(plan.dir, img, image::magic::kTimens, clocks_[id]);
    }
  }
}

uint64_t TimeNamespaces::inode_of(const std::string& path) const {
  struct stat st;
  if (::stat(path.c_str(), &st) < 0) fail_sys("cannot read the namespace {}", path);
  return st.st_ino;
}

void TimeNamespaces::enter(RemoteTask& rt, const std::string& path) {
  const uint64_t fd =
      rt.check("open of a time namespace", SYS_openat,
               {static_cast<uint64_t>(AT_FDCWD), rt.put_str(0, path), O_RDONLY | O_CLOEXEC, 0});
  long r = rt.syscall(SYS_setns, {fd, CLONE_NEWTIME});
  rt.check("close", SYS_close, {fd});
  if (r < 0)
    fail_errno(static_cast<int>(-r), "task {}: cannot enter time namespace {}", rt.tid(), path);
}

void TimeNamespaces::create(RemoteTask& rt, uint32_t id) {
  const pid_t pid = rt.tid();
  rt.check("unshare(CLONE_NEWTIME)", SYS_unshare, {CLONE_NEWTIME});
  // Offsets from the initial namespace's clocks (cryo's, less its own namespace's offsets)
  // that make the new namespace's clocks read what they read when dumped.
  const proc::TimensOffsets mine = proc::read_timens_offsets(::getpid());
  const timens_entry& c = clocks_.at(id);
  auto ns = [](const criu_timespec& t) {
    return static_cast<int64_t>(t.tv_sec()) * kNsec + static_cast<int64_t>(t.tv_nsec());
  };
  const std::string lines =
      offset_line(CLOCK_MONOTONIC,
                  ns(c.monotonic()) - (clock_ns(CLOCK_MONOTONIC) - mine.monotonic_ns)) +
      offset_line(CLOCK_BOOTTIME, ns(c.boottime()) - (clock_ns(CLOCK_BOOTTIME) - mine.boottime_ns));
  const std::string path = fmt::format("/proc/{}/timens_offsets", pid);
  Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd || ::write(fd.get(), lines.data(), lines.size()) != static_cast<ssize_t>(lines.size()))
    fail_sys(
        "task {}: cannot set the clock offsets of time namespace {} (image timens-{}.img; "
        "clocks that would read below zero here are refused)",
        pid, id, id);
  made_[id] = fmt::format("/proc/{}/ns/time_for_children", pid);
  log::debug("task {}: new time namespace {} with offsets {}", pid, id, lines);
}

void TimeNamespaces::place(RemoteTask& rt, const TaskPlan& t) {
  if (clocks_.empty() || t.zombie || !t.ids.has_time_ns_id()) return;
  const pid_t pid = t.pid();
  const uint32_t own = t.ids.time_ns_id();
  const uint32_t children =
      t.ids.cryo_time_for_children_ns_id() ? t.ids.cryo_time_for_children_ns_id() : own;
  const std::string self = fmt::format("/proc/{}/ns/time", pid);
  auto it = made_.find(own);
  if (it == made_.end()) {
    // A namespace only this task's parent could have given it: made here, then entered.
    create(rt, own);
    enter(rt, fmt::format("/proc/{}/ns/time_for_children", pid));
    made_[own] = self;
  } else if (inode_of(it->second) != inode_of(self)) {
    enter(rt, it->second);
  } else if (inode_of(fmt::format("/proc/{}/ns/time_for_children", pid)) != inode_of(self)) {
    enter(rt, self);  // born where it belongs, but with its parent's namespace for children
  }
  if (children == own) return;
  if (made_.contains(children))
    fail(
        "task {}: its children's time namespace {} is already another task's: such a tree "
        "cannot be rebuilt (not supported)",
        pid, children);
  create(rt, children);
}

}  // namespace cryo::restore
