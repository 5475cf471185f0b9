#include "dump/namespaces.h"

#include <sched.h>
#include <sys/utsname.h>

#include "base/error.h"
#include "base/log.h"
#include "image/image.h"
#include "kernel/namespace.h"
#include "utsns.pb.h"

namespace cryo::dump {

const NsKind kNsKinds[7] = {
    {"user", CLONE_NEWUSER, 6, &task_kobj_ids_entry::set_user_ns_id,
     "user namespaces (uid and gid maps) are not supported yet"},
    {"pid", CLONE_NEWPID, 1, &task_kobj_ids_entry::set_pid_ns_id, nullptr},
    {"uts", CLONE_NEWUTS, 4, &task_kobj_ids_entry::set_uts_ns_id, nullptr},
    // Its objects: dump/ipc_ns.h (which refuses what it cannot dump yet).
    {"ipc", CLONE_NEWIPC, 3, &task_kobj_ids_entry::set_ipc_ns_id, nullptr},
    // One of the tree's own, with its mount tree: dump/mounts.h (which refuses the rest).
    {"mnt", CLONE_NEWNS, 5, &task_kobj_ids_entry::set_mnt_ns_id, nullptr},
    {"net", CLONE_NEWNET, 2, &task_kobj_ids_entry::set_net_ns_id,
     "network namespaces are not supported yet"},
    {"cgroup", CLONE_NEWCGROUP, 7, &task_kobj_ids_entry::set_cgroup_ns_id,
     "cgroup namespaces are not supported yet"},
};

namespace {

constexpr size_t kPid = 1, kUts = 2, kIpc = 3;
// The first id of a namespace that is not cryo's (8 is cryo's time namespace's).
constexpr uint32_t kFirstNewId = 9;

// The PIDs of a task or thread below cryo's pid namespace (NSpid less its first).
std::vector<pid_t> nested_pids(const std::string& status_path) {
  std::vector<pid_t> all = kernel::ns_pids(status_path);
  return {all.begin() + 1, all.end()};
}

}  // namespace

Namespaces::Namespaces(const std::vector<FrozenTask>& tasks) : ids_(std::size(kNsKinds)) {
  for (size_t k = 0; k < std::size(kNsKinds); k++) {
    mine_.push_back(kernel::ns_inode(fmt::format("/proc/self/ns/{}", kNsKinds[k].name)));
    ids_[k][mine_.back()] = kNsKinds[k].cryo_id;
  }
  uint32_t next = kFirstNewId;
  for (const FrozenTask& t : tasks) {
    const Task* parent = nullptr;
    if (&t != &tasks.front()) {
      auto it = tasks_.find(t.ppid);
      if (it == tasks_.end()) fail("task {}: its parent {} was not read before it", t.pid, t.ppid);
      parent = &it->second;
    }
    const std::vector<uint64_t>& inherited = parent ? parent->ns : mine_;
    const size_t parent_depth = parent ? parent->pids.size() : 0;
    Task x;
    x.pids = nested_pids(fmt::format("/proc/{}/status", t.pid));
    if (t.zombie) {
      // A zombie's namespaces are gone but its pid namespace: it died in its parent's.
      x.ns = inherited;
      if (x.pids.size() != parent_depth)
        fail(
            "zombie {} was the first process (init) of a pid namespace of its own: a namespace "
            "that died with it cannot be restored",
            t.pid);
      tasks_[t.pid] = std::move(x);
      continue;
    }
    for (const NsKind& kind : kNsKinds)
      x.ns.push_back(kernel::ns_inode(fmt::format("/proc/{}/ns/{}", t.pid, kind.name)));
    // setns or unshare in one thread changes that thread's namespaces only.
    for (size_t i = 1; i < t.threads.size(); i++) {
      const pid_t tid = t.threads[i].tid;
      for (size_t k = 0; k < std::size(kNsKinds); k++)
        if (kernel::ns_inode(fmt::format("/proc/{}/task/{}/ns/{}", t.pid, tid, kNsKinds[k].name)) !=
            x.ns[k])
          fail(
              "thread {} of task {} is in another {} namespace than its leader (setns or "
              "unshare in one thread): not supported",
              tid, t.pid, kNsKinds[k].name);
      x.tids.push_back(nested_pids(fmt::format("/proc/{}/task/{}/status", t.pid, tid)));
    }
    // After unshare(CLONE_NEWPID) the task's children are born in another namespace, whose
    // init must be one of them (checked at the end).
    const uint64_t for_children =
        kernel::ns_inode(fmt::format("/proc/{}/ns/pid_for_children", t.pid));
    if (for_children != x.ns[kPid]) x.pid_for_children = for_children;
    // A later child born in its parent's namespace for children: the first one made it.
    const bool joins = parent && parent->pid_for_children &&
                       x.ns[kPid] == parent->pid_for_children && ids_[kPid].contains(x.ns[kPid]);
    for (size_t k = 0; k < std::size(kNsKinds); k++) {
      const NsKind& kind = kNsKinds[k];
      if (x.ns[k] == inherited[k] || (k == kPid && joins)) continue;
      if (kind.refused)
        fail(
            "task {} is in another {} namespace ({}:[{}]) than {} ({}:[{}]): {}; dump a tree "
            "that shares cryo's {} namespace",
            t.pid, kind.name, kind.name, x.ns[k], parent ? "its parent" : "cryo", kind.name,
            inherited[k], kind.refused, kind.name);
      if (!ids_[k].emplace(x.ns[k], next).second)
        fail(
            "task {} is in {} namespace {}:[{}], which its parent {} is not in but another task "
            "of the tree is (the task joined it with setns): not supported",
            t.pid, kind.name, kind.name, x.ns[k], t.ppid);
      log::info("task {} makes {} namespace {}:[{}] (id {})", t.pid, kind.name, kind.name, x.ns[k],
                next);
      next++;
      if (k == kUts) uts_first_[x.ns[k]] = t.pid;
      if (k == kIpc) ipc_.emplace_back(t.pid, x.ns[k], next - 1);
    }
    if (x.ns[kPid] != inherited[kPid]) {
      if (x.pids.size() != parent_depth + 1 || (x.pids.back() != 1 && !joins)) {
        std::string levels;
        for (pid_t p : x.pids) levels += fmt::format(" {}", p);
        fail(
            "task {} is in pid namespace pid:[{}] (its PIDs below cryo's namespace:{}), but not as "
            "its first process (PID 1) under {}: dump that namespace's init instead",
            t.pid, x.ns[kPid], levels, parent ? "its parent" : "cryo's namespace");
      }
    } else if (x.pids.size() != parent_depth) {
      fail("task {}: its NSpid levels ({}) disagree with its parent's pid namespace", t.pid,
           x.pids.size() + 1);
    }
    tasks_[t.pid] = std::move(x);
  }
  for (const auto& [pid, x] : tasks_)
    if (x.pid_for_children && !ids_[kPid].contains(x.pid_for_children))
      fail(
          "task {} called unshare(CLONE_NEWPID): its next children get a pid namespace "
          "(pid:[{}]) without a process of the tree (none yet, or its init is gone), which "
          "cryo cannot restore; dump it once a child is born there",
          pid, x.pid_for_children);
}

uint32_t Namespaces::id_of(size_t kind, uint64_t ino) const {
  return ids_[kind].at(ino);
}

void Namespaces::set_ids(pid_t pid, task_kobj_ids_entry* ids) const {
  auto it = tasks_.find(pid);
  for (size_t k = 0; k < std::size(kNsKinds); k++)
    (ids->*kNsKinds[k].set_id)(it == tasks_.end() ? kNsKinds[k].cryo_id
                                                  : id_of(k, it->second.ns[k]));
  if (it != tasks_.end() && it->second.pid_for_children)
    ids->set_cryo_pid_for_children_ns_id(id_of(kPid, it->second.pid_for_children));
}

void Namespaces::set_pids(const FrozenTask& t, pstree_entry* e) const {
  const Task& x = tasks_.at(t.pid);
  if (x.pids.empty()) return;
  for (pid_t p : x.pids) e->add_cryo_ns_pid(static_cast<uint32_t>(p));
  for (pid_t p : x.pids) e->add_cryo_ns_tid(static_cast<uint32_t>(p));  // the leader's
  for (const auto& tids : x.tids) {
    if (tids.size() != x.pids.size())
      fail("task {}: a thread's NSpid levels disagree with its leader's", t.pid);
    for (pid_t p : tids) e->add_cryo_ns_tid(static_cast<uint32_t>(p));
  }
}

void Namespaces::write(const std::string& dir) const {
  for (const auto& [ino, pid] : uts_first_) {
    utsname u{};
    kernel::in_namespace(fmt::format("/proc/{}/ns/uts", pid), CLONE_NEWUTS, [&] {
      if (::uname(&u) < 0) fail_sys("cannot read the names of uts:[{}] (uname)", ino);
    });
    utsns_entry e;
    e.set_nodename(u.nodename);
    e.set_domainname(u.domainname);
    const uint32_t id = id_of(kUts, ino);
    image::write_one(dir, fmt::format("utsns-{}.img", id), image::magic::kUtsns, e);
    log::info("uts namespace uts:[{}] (id {}): host name \"{}\", domain name \"{}\"", ino, id,
              u.nodename, u.domainname);
  }
  for (const IpcNamespace& ipc : ipc_) ipc.write(dir);
}

}  // namespace cryo::dump
