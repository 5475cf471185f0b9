#include "restore/namespaces.h"

#include <sched.h>
#include <sys/syscall.h>

#include <set>

#include "base/error.h"
#include "base/log.h"
#include "image/image.h"
#include "infect/scratch_arena.h"

namespace cryo::restore {
namespace {

// What a restore knows of each kind. A task whose namespace differs from its parent's (for
// the root: whose namespace has an image) made it. `image` is CRIU's image of such a
// namespace (ID its id); `refused`, when set, says why cryo cannot make one yet.
struct Kind {
  const char* name;
  uint64_t cflag;
  uint32_t (task_kobj_ids_entry::*id)() const;
  const char* image;
  const char* refused;
};

// In creation order: user first.
constexpr Kind kKinds[] = {
    {"user", CLONE_NEWUSER, &task_kobj_ids_entry::user_ns_id, "userns-{}.img",
     "user namespaces are not supported yet"},
    {"uts", CLONE_NEWUTS, &task_kobj_ids_entry::uts_ns_id, "utsns-{}.img", nullptr},
    // Its settings and objects: restore/ipc_ns.h.
    {"ipc", CLONE_NEWIPC, &task_kobj_ids_entry::ipc_ns_id, "ipcns-var-{}.img", nullptr},
    // Its mount tree is built by restore/mounts.h.
    {"mnt", CLONE_NEWNS, &task_kobj_ids_entry::mnt_ns_id, "mountpoints-{}.img", nullptr},
    {"net", CLONE_NEWNET, &task_kobj_ids_entry::net_ns_id, "netns-{}.img",
     "network namespaces are not supported yet"},
    {"cgroup", CLONE_NEWCGROUP, &task_kobj_ids_entry::cgroup_ns_id, nullptr,
     "cgroup namespaces are not supported yet"},
};

}  // namespace

Namespaces::Namespaces(const Plan& plan)
    : plan_(plan), flags_(plan.tasks.size(), 0), unshare_(plan.tasks.size(), false) {
  std::set<uint32_t> pid_nss;  // made so far
  for (size_t i = 0; i < plan.tasks.size(); i++) {
    const TaskPlan& t = plan.tasks[i];
    const TaskPlan* parent = t.parent >= 0 ? &plan.tasks[static_cast<size_t>(t.parent)] : nullptr;
    // pid: one level deeper than the parent (or cryo) makes a namespace, whose init it is.
    const int depth = t.ps.cryo_ns_pid_size();
    const int above = parent ? parent->ps.cryo_ns_pid_size() : 0;
    // Born in the namespace its parent's next children get (after unshare(CLONE_NEWPID)).
    const bool for_children = parent && !t.zombie &&
                              parent->ids.has_cryo_pid_for_children_ns_id() &&
                              parent->ids.cryo_pid_for_children_ns_id() == t.ids.pid_ns_id();
    const bool joins = for_children && pid_nss.contains(t.ids.pid_ns_id());
    if (depth == above + 1 && !joins) {
      if (t.ps.cryo_ns_pid(depth - 1) != 1)
        fail(
            "image pstree.img: task {} would make a pid namespace where its PID is {}, not 1: "
            "corrupt or edited images",
            t.pid(), t.ps.cryo_ns_pid(depth - 1));
      if (t.zombie) fail("image pstree.img: zombie {} would make a pid namespace", t.pid());
      if (for_children)
        unshare_[i] = true;
      else
        flags_[i] |= CLONE_NEWPID;
      pid_nss.insert(t.ids.pid_ns_id());
    } else if (depth != above && !(depth == above + 1 && joins)) {
      fail("image pstree.img: task {} has {} pid namespace level(s), its parent {}", t.pid(), depth,
           above);
    }
    const int threads = t.zombie ? 1 : t.ps.threads_size();
    if (t.ps.cryo_ns_tid_size() != threads * depth)
      fail("image pstree.img: task {} lists {} nested TIDs for {} thread(s) at {} level(s)",
           t.pid(), t.ps.cryo_ns_tid_size(), threads, depth);
    if (t.zombie) continue;  // in its parent's other namespaces
    for (const Kind& kind : kKinds) {
      const uint32_t id = (t.ids.*kind.id)();
      const bool made =
          parent ? id != (parent->ids.*kind.id)()
                 : kind.image && image::exists(plan.dir, fmt::format(fmt::runtime(kind.image), id));
      if (!made) continue;
      if (kind.refused)
        fail("task {} was in a {} namespace of its own (id {}), which cryo cannot restore: {}",
             t.pid(), kind.name, id, kind.refused);
      flags_[i] |= kind.cflag;
    }
    if (flags_[i] & CLONE_NEWUTS) {
      const uint32_t id = t.ids.uts_ns_id();
      utsns_entry e;
      image::read_one(plan.dir, fmt::format("utsns-{}.img", id), image::magic::kUtsns, e);
      if (e.nodename().size() > 64 || e.domainname().size() > 64)
        fail("image utsns-{}.img: a name longer than 64 bytes: corrupt or edited images", id);
      uts_[id] = e;
    }
    if (flags_[i] & CLONE_NEWIPC) {
      const uint32_t id = t.ids.ipc_ns_id();
      ipc_.try_emplace(id, plan.dir, id);
    }
    if (flags_[i] || unshare_[i])
      log::info("task {} makes namespaces{}{}{}", t.pid(),
                flags_[i] & CLONE_NEWPID ? " pid"
                : unshare_[i]            ? " pid (its parent's for children)"
                                         : "",
                flags_[i] & CLONE_NEWUTS ? " uts" : "", flags_[i] & CLONE_NEWIPC ? " ipc" : "");
  }
}

std::vector<pid_t> Namespaces::set_tid(size_t i, size_t k) const {
  const TaskPlan& t = plan_.tasks[i];
  const auto depth = static_cast<size_t>(t.ps.cryo_ns_pid_size());
  std::vector<pid_t> ids;
  const pid_t outer = static_cast<pid_t>(k == 0 ? t.ps.pid() : t.ps.threads(static_cast<int>(k)));
  for (size_t l = depth; l-- > 0;)
    ids.push_back(static_cast<pid_t>(t.ps.cryo_ns_tid(static_cast<int>(k * depth + l))));
  ids.push_back(outer);
  return ids;
}

bool Namespaces::below_parent(size_t i) const {
  const TaskPlan& t = plan_.tasks[i];
  const int above =
      t.parent >= 0 ? plan_.tasks[static_cast<size_t>(t.parent)].ps.cryo_ns_pid_size() : 0;
  return t.ps.cryo_ns_pid_size() > above;
}

pid_t Namespaces::pid_seen_by(size_t i, pid_t pid) const {
  const TaskPlan& t = plan_.tasks[i];
  if (t.ps.cryo_ns_pid_size() == 0) return pid;
  const int j = plan_.find(pid);
  if (j < 0) return 0;
  const TaskPlan& o = plan_.tasks[static_cast<size_t>(j)];
  if (o.zombie || o.ps.cryo_ns_pid_size() != t.ps.cryo_ns_pid_size() ||
      o.ids.pid_ns_id() != t.ids.pid_ns_id())
    return 0;
  return static_cast<pid_t>(o.ps.cryo_ns_pid(o.ps.cryo_ns_pid_size() - 1));
}

void Namespaces::fill(RemoteTask& rt, size_t i) const {
  if (flags_[i] & CLONE_NEWIPC) ipc_.at(plan_.tasks[i].ids.ipc_ns_id()).fill(rt.tid());
  if (!(flags_[i] & CLONE_NEWUTS)) return;
  const utsns_entry& e = uts_.at(plan_.tasks[i].ids.uts_ns_id());
  ScratchArena arena(rt);
  rt.check("sethostname", SYS_sethostname, arena.put_str(e.nodename()), e.nodename().size());
  rt.check("setdomainname", SYS_setdomainname, arena.put_str(e.domainname()),
           e.domainname().size());
  log::debug("task {}: host name \"{}\", domain name \"{}\"", rt.tid(), e.nodename(),
             e.domainname());
}

}  // namespace cryo::restore
