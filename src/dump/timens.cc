#include "dump/timens.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "image/image.h"
#include "proc/proc.h"
#include "timens.pb.h"

namespace cryo::dump {
namespace {

uint64_t ns_inode(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) < 0) fail_sys("cannot read the namespace {}", path);
  return st.st_ino;
}

int64_t clock_ns(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void set_timespec(criu_timespec* t, int64_t ns) {
  t->set_tv_sec(static_cast<uint64_t>(ns / 1000000000));
  t->set_tv_nsec(static_cast<uint64_t>(ns % 1000000000));
}

}  // namespace

TimeNamespaces::TimeNamespaces(const std::vector<FrozenTask>& tasks) {
  if (::access("/proc/self/ns/time", F_OK) < 0) return;  // a kernel without time namespaces
  supported_ = true;
  root_ino_ = ns_inode("/proc/self/ns/time");
  ids_[root_ino_] = kRootId;
  uint32_t next = kRootId + 1;
  std::map<uint64_t, pid_t> member;  // a task in each namespace, for messages
  for (const auto& t : tasks) {
    if (t.zombie) continue;
    Task ns{ns_inode(fmt::format("/proc/{}/ns/time", t.pid)),
            ns_inode(fmt::format("/proc/{}/ns/time_for_children", t.pid))};
    if (&t == &tasks.front() && ns.own != root_ino_)
      fail(
          "the root task {} is in another time namespace than cryo: restore it from inside that "
          "namespace; namespaces of the root are not supported yet",
          t.pid);
    // unshare(CLONE_NEWTIME) in one thread changes that thread's only.
    for (size_t k = 1; k < t.threads.size(); k++) {
      const pid_t tid = t.threads[k].tid;
      const auto base = fmt::format("/proc/{}/task/{}/ns/", t.pid, tid);
      if (ns_inode(base + "time") != ns.own || ns_inode(base + "time_for_children") != ns.children)
        fail(
            "thread {} of task {} has a time namespace for its children of its own (unshare in "
            "one thread): not supported",
            tid, t.pid);
    }
    for (uint64_t ino : {ns.own, ns.children}) {
      if (ids_.emplace(ino, next).second) next++;
      member.emplace(ino, t.pid);
    }
    offsets_from_.emplace(ns.children, t.pid);
    tasks_[t.pid] = ns;
  }
  // /proc/PID/timens_offsets shows the namespace PID's children get: the one of a task that
  // left it (unshare again) and whose parent did too cannot be read.
  for (const auto& [ino, id] : ids_)
    if (ino != root_ino_ && !offsets_from_.contains(ino))
      fail(
          "task {} is in time namespace time:[{}], which no task of the tree gives its children: "
          "cryo cannot read its clock offsets (not supported)",
          member.at(ino), ino);
  if (ids_.size() > 1)
    log::info("the tree has {} time namespace(s) besides cryo's", ids_.size() - 1);
}

uint32_t TimeNamespaces::id_of(uint64_t ino) const {
  return ids_.at(ino);
}

void TimeNamespaces::set_ids(pid_t pid, task_kobj_ids_entry* ids) const {
  auto it = tasks_.find(pid);
  if (it == tasks_.end()) return;
  ids->set_time_ns_id(id_of(it->second.own));
  if (it->second.children != it->second.own)
    ids->set_cryo_time_for_children_ns_id(id_of(it->second.children));
}

void TimeNamespaces::write(const std::string& dir) const {
  if (ids_.size() < 2) return;
  // The clocks of the initial namespace: cryo's, less its own namespace's offsets.
  if (ns_inode("/proc/self/ns/time_for_children") != root_ino_)
    fail("cryo runs with a time namespace for its children that is not its own: run it without");
  const proc::TimensOffsets mine = proc::read_timens_offsets(::getpid());
  const int64_t mono = clock_ns(CLOCK_MONOTONIC) - mine.monotonic_ns;
  const int64_t boot = clock_ns(CLOCK_BOOTTIME) - mine.boottime_ns;
  for (const auto& [ino, id] : ids_) {
    if (ino == root_ino_) continue;
    // As CRIU: the namespace's clocks now, which go on from there after a restore.
    const proc::TimensOffsets off = proc::read_timens_offsets(offsets_from_.at(ino));
    timens_entry e;
    set_timespec(e.mutable_monotonic(), mono + off.monotonic_ns);
    set_timespec(e.mutable_boottime(), boot + off.boottime_ns);
    image::write_one(dir, fmt::format("timens-{}.img", id), image::magic::kTimens, e);
    log::debug("time namespace time:[{}] (id {}): offsets {} ns monotonic, {} ns boottime", ino, id,
               off.monotonic_ns, off.boottime_ns);
  }
}

}  // namespace cryo::dump
