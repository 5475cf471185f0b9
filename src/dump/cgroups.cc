#include "dump/cgroups.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <regex>
#include <sstream>
#include <thread>

#include "base/deadline.h"
#include "base/error.h"
#include "base/fd.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "image/image.h"
#include "proc/proc.h"

namespace cryo::dump {
namespace {

// Properties every v1 hierarchy has.
const std::vector<std::string> kV1Common = {"cgroup.clone_children", "notify_on_release"};

// The properties dumped by default, per controller (the files CRIU dumps). cpuset.cpus and
// cpuset.mems come first: a cpuset without them takes no task.
CgroupProps builtin_props() {
  return {
      {"cpu",
       {"cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.rt_period_us",
        "cpu.rt_runtime_us"}},
      {"memory",
       {"memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.swappiness",
        "memory.soft_limit_in_bytes", "memory.move_charge_at_immigrate", "memory.oom_control",
        "memory.use_hierarchy"}},
      {"cpuset",
       {"cpuset.cpus", "cpuset.mems", "cpuset.memory_migrate", "cpuset.cpu_exclusive",
        "cpuset.mem_exclusive", "cpuset.mem_hardwall", "cpuset.memory_spread_page",
        "cpuset.memory_spread_slab", "cpuset.sched_load_balance",
        "cpuset.sched_relax_domain_level"}},
      {"blkio", {"blkio.weight"}},
      {"net_cls", {"net_cls.classid"}},
      {"net_prio", {"net_prio.ifpriomap"}},
      {"pids", {"pids.max"}},
      {"devices", {"devices.list"}},
      {proc::kUnifiedHierarchy,
       {"cgroup.subtree_control", "cgroup.max.depth", "cgroup.max.descendants", "cpuset.cpus",
        "cpuset.mems", "cpu.weight", "cpu.max", "memory.min", "memory.low", "memory.high",
        "memory.max", "memory.swap.max", "io.weight", "pids.max"}},
  };
}

cgroup_perms perms_of(const struct stat& st) {
  cgroup_perms p;
  p.set_mode(st.st_mode & 07777);
  p.set_uid(st.st_uid);
  p.set_gid(st.st_gid);
  return p;
}

bool under(const std::string& path, const std::string& top) {
  return path == top || top == "/" || path.starts_with(top + "/");
}

}  // namespace

CgroupProps cgroup_props(const std::string& spec, const std::string& where) {
  CgroupProps props = builtin_props();
  static const std::regex kController(R"re(^\s*"([^"]+)"\s*:\s*$)re");
  static const std::regex kStrategy(R"re(^\s*-\s*"strategy"\s*:\s*"([^"]*)"\s*$)re");
  static const std::regex kProperties(R"re(^\s*-\s*"properties"\s*:\s*\[(.*)\]\s*$)re");
  static const std::regex kName(R"re("([^"]+)")re");
  std::istringstream in(spec);
  std::string line, controller;
  bool merge = true;
  int n = 0;
  while (std::getline(in, line)) {
    n++;
    std::smatch m;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (std::regex_match(line, m, kController)) {
      controller = m[1];
      merge = true;
    } else if (std::regex_match(line, m, kStrategy) && !controller.empty()) {
      if (m[1] != "merge" && m[1] != "replace")
        fail("{} line {}: bad strategy '{}': use \"merge\" or \"replace\"", where, n,
             std::string(m[1]));
      merge = m[1] == "merge";
    } else if (std::regex_match(line, m, kProperties) && !controller.empty()) {
      std::vector<std::string>& list = props[controller];
      if (!merge) list.clear();
      std::string names = m[1];
      for (std::sregex_iterator it(names.begin(), names.end(), kName), end; it != end; ++it)
        if (std::find(list.begin(), list.end(), (*it)[1].str()) == list.end())
          list.push_back((*it)[1]);
    } else {
      fail(
          "{} line {}: cannot read '{}': expected \"CONTROLLER\":, - \"strategy\": \"merge\" "
          "(or \"replace\") and - \"properties\": [\"NAME\", ...]",
          where, n, line);
    }
  }
  return props;
}

CgroupSets::CgroupSets(CgroupOptions opts) : opts_(std::move(opts)) {
  if (opts_.ignore) return;
  std::string spec = opts_.props, where = "--cgroup-props";
  if (!opts_.props_file.empty()) {
    spec += "\n" + proc::read_file(opts_.props_file);
    where = "--cgroup-props-file " + opts_.props_file;
  }
  props_ = cgroup_props(spec, where);
  add(::getpid(), {});  // set 1: cryo's own
}

uint32_t CgroupSets::add(pid_t pid, const std::vector<pid_t>& tids) {
  if (opts_.ignore) return 0;
  std::vector<proc::CgroupMember> set;
  const std::string leader = proc::read_file(fmt::format("/proc/{}/cgroup", pid));
  for (proc::CgroupMember& m : proc::parse_cgroup(leader)) {
    bool kept = opts_.dump_controllers.empty();
    for (const std::string& c : proc::cgroup_controllers(m.name))
      if (std::find(opts_.dump_controllers.begin(), opts_.dump_controllers.end(), c) !=
          opts_.dump_controllers.end())
        kept = true;
    if (kept) set.push_back(std::move(m));
  }
  for (pid_t tid : tids)
    if (tid != pid && proc::read_file(fmt::format("/proc/{}/task/{}/cgroup", pid, tid)) != leader)
      fail(
          "task {}: its thread {} is in other cgroups than the task (a threaded cgroup): not "
          "supported yet; dump with --manage-cgroups=ignore to leave cgroups out",
          pid, tid);
  auto it = std::find(sets_.begin(), sets_.end(), set);
  if (it != sets_.end()) return static_cast<uint32_t>(it - sets_.begin()) + 1;
  sets_.push_back(std::move(set));
  log::debug("task {}: cgroup set {}", pid, sets_.size());
  return static_cast<uint32_t>(sets_.size());
}

cgroup_dir_entry CgroupSets::walk(const std::string& hierarchy, const std::string& path,
                                  const std::string& name) {
  const std::string dir = mounts_.dir(hierarchy, path);
  cgroup_dir_entry e;
  e.set_dir_name(name);
  struct stat st;
  if (::stat(dir.c_str(), &st) < 0) fail_sys("cannot look at cgroup {}", dir);
  *e.mutable_dir_perms() = perms_of(st);
  std::vector<std::string> names;
  for (const std::string& c : proc::cgroup_controllers(hierarchy)) {
    auto p = props_.find(c);
    if (p != props_.end()) names.insert(names.end(), p->second.begin(), p->second.end());
  }
  if (hierarchy != proc::kUnifiedHierarchy)
    names.insert(names.end(), kV1Common.begin(), kV1Common.end());
  for (const std::string& prop : names) {
    const std::string file = dir + "/" + prop;
    auto value = proc::read_cgroup_file(file);
    if (!value || ::stat(file.c_str(), &st) < 0) continue;  // not in this kernel or cgroup
    cgroup_prop_entry* pe = e.add_properties();
    pe->set_name(prop);
    pe->set_value(proc::cgroup_prop_value(prop, *value));
    *pe->mutable_perms() = perms_of(st);
  }
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d) fail_sys("cannot list cgroup {}", dir);
  DIR* ds = ::fdopendir(d.release());
  std::vector<std::string> subdirs;
  while (struct dirent* de = ::readdir(ds))
    if (de->d_type == DT_DIR && std::strcmp(de->d_name, ".") && std::strcmp(de->d_name, ".."))
      subdirs.push_back(de->d_name);
  ::closedir(ds);
  std::sort(subdirs.begin(), subdirs.end());
  for (const std::string& s : subdirs)
    *e.add_children() = walk(hierarchy, path == "/" ? "/" + s : path + "/" + s, s);
  return e;
}

void CgroupSets::write(const std::string& dir) {
  if (opts_.ignore) return;
  if (sets_.size() == 1) {
    // Every task in cryo's own cgroups: nothing to restore (and no older image to mislead).
    log::info("every task is in cryo's own cgroups: no cgroup.img");
    ::unlink((dir + "/cgroup.img").c_str());
    return;
  }
  cgroup_entry img;
  std::map<std::string, std::vector<std::string>> tops;  // hierarchy -> top directories
  std::map<std::string, std::string> own;
  for (const proc::CgroupMember& m : sets_[0]) own[m.name] = m.path;
  for (size_t i = 0; i < sets_.size(); i++) {
    cg_set_entry* s = img.add_sets();
    s->set_id(static_cast<uint32_t>(i) + 1);
    for (const proc::CgroupMember& m : sets_[i]) {
      cg_member_entry* me = s->add_ctls();
      me->set_name(m.name);
      me->set_path(m.path);
      tops[m.name];  // every hierarchy gets its entry
      // The root and cryo's own cgroups are not dumped: they must exist at restore.
      if (i == 0 || m.path == "/" || own[m.name] == m.path) continue;
      std::string top = m.path;
      for (const auto& [ctl, root] : opts_.roots) {
        auto cs = proc::cgroup_controllers(m.name);
        bool mine =
            ctl.empty() || ctl == m.name || std::find(cs.begin(), cs.end(), ctl) != cs.end();
        if (mine && under(m.path, root) && root != "/") top = root;
        if (mine && !ctl.empty()) break;  // a controller's own root beats the default
      }
      tops[m.name].push_back(top);
    }
  }
  for (auto& [hierarchy, list] : tops) {
    cg_controller_entry* c = img.add_controllers();
    for (const std::string& n : proc::cgroup_controllers(hierarchy)) c->add_cnames(n);
    std::sort(list.begin(), list.end());
    list.erase(std::unique(list.begin(), list.end()), list.end());
    for (const std::string& top : list) {
      bool nested = std::any_of(list.begin(), list.end(), [&](const std::string& other) {
        return other != top && under(top, other);
      });
      if (!nested) *c->add_dirs() = walk(hierarchy, top, top.substr(1));
    }
  }
  image::write_one(dir, "cgroup.img", image::magic::kCgroup, img);
  log::info("cgroup.img: {} set(s), {} hierarchies", img.sets_size(), img.controllers_size());
}

CgroupFreezer::CgroupFreezer(const std::string& path, pid_t root, unsigned timeout_s)
    : path_(path), timeout_s_(timeout_s) {
  while (path_.size() > 1 && path_.back() == '/') path_.pop_back();
  struct stat st;
  if (path_.empty() || path_[0] != '/' || ::stat(path_.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
    fail(
        "--freeze-cgroup {}: no such cgroup directory: give the absolute path of the freezer "
        "cgroup holding the tree (/sys/fs/cgroup/freezer/NAME, or a cgroup v2 directory)",
        path);
  if (::access((path_ + "/freezer.state").c_str(), F_OK) == 0)
    v2_ = false;
  else if (::access((path_ + "/cgroup.freeze").c_str(), F_OK) == 0)
    v2_ = true;
  else
    fail(
        "--freeze-cgroup {}: not a freezer cgroup (it has neither freezer.state nor "
        "cgroup.freeze)",
        path);
  // The root task must be in it (or below): else freezing it would not hold the tree.
  const char* hierarchy = v2_ ? proc::kUnifiedHierarchy : "freezer";
  proc::CgroupMounts mounts;
  const std::string mount = mounts.dir(hierarchy);
  std::string rel = path_.starts_with(mount) ? path_.substr(mount.size()) : "";
  if (rel.empty() && path_ == mount) rel = "/";
  std::string in;
  for (const proc::CgroupMember& m : proc::read_cgroup(root))
    if (m.name == hierarchy) in = m.path;
  if (rel.empty() || !under(in, rel))
    fail(
        "--freeze-cgroup {}: task {} is not in that cgroup (its {} cgroup is {}): give the "
        "cgroup holding the tree",
        path, root, v2_ ? "v2" : "freezer", in.empty() ? "unknown" : mount + in);
  was_frozen_ = frozen_now();
  if (was_frozen_) log::info("cgroup {} is frozen already: it is left frozen", path_);
}

bool CgroupFreezer::frozen_now() const {
  if (!v2_) return proc::read_cgroup_file(path_ + "/freezer.state").value_or("") == "FROZEN";
  auto events = proc::read_cgroup_file(path_ + "/cgroup.events").value_or("");
  return events.find("frozen 1") != std::string::npos;
}

void CgroupFreezer::set(bool frozen) const {
  const std::string file = path_ + (v2_ ? "/cgroup.freeze" : "/freezer.state");
  const char* value = v2_ ? (frozen ? "1" : "0") : (frozen ? "FROZEN" : "THAWED");
  if (int err = proc::write_cgroup_file(file, value))
    fail_errno(err, "cannot write {} to {}", value, file);
}

void CgroupFreezer::freeze() {
  set(true);
  Deadline deadline{std::chrono::seconds(timeout_s_)};
  while (!frozen_now()) {
    interrupt_point();
    if (deadline.expired())
      fail(
          "cgroup {} did not freeze within {} s (a task in an uninterruptible sleep?): retry, or "
          "give a longer --timeout",
          path_, timeout_s_);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  log::info("froze cgroup {}", path_);
}

void CgroupFreezer::thaw() {
  set(false);
  log::info("thawed cgroup {}", path_);
}

CgroupFreezer::~CgroupFreezer() {
  try {
    set(was_frozen_);
  } catch (const Error& e) {
    log::user(log::kWarn, e.what());
  }
}

}  // namespace cryo::dump
