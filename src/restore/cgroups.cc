#include "restore/cgroups.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "base/error.h"
#include "base/log.h"
#include "base/strings.h"
#include "image/image.h"
#include "inventory.pb.h"

namespace cryo::restore {
namespace {

const char* const kModeNames[] = {"none", "props", "soft", "full", "strict", "ignore"};

const char* mode_name(CgroupMode m) {
  return kModeNames[static_cast<int>(m)];
}

// Files a cgroup image must never make cryo write: they move tasks, kill them, or run
// programs as root.
const std::set<std::string> kForbidden = {
    "release_agent",  "cgroup.procs",         "tasks",
    "cgroup.threads", "cgroup.kill",          "cgroup.freeze",
    "freezer.state",  "cgroup.event_control", "memory.force_empty"};

bool under(const std::string& path, const std::string& top) {
  return path == top || path.starts_with(top + "/");
}

std::string hierarchy_of(const cg_controller_entry& c) {
  std::string h;
  for (const std::string& n : c.cnames()) h += (h.empty() ? "" : ",") + n;
  return h;
}

// A path of components that cannot leave the hierarchy: no "", ".", "..".
void check_relative(const std::string& path, const std::string& what) {
  std::istringstream in(path);
  std::string part;
  bool any = false;
  while (std::getline(in, part, '/')) {
    if (part.empty() || part == "." || part == "..")
      fail("cgroup.img: bad {} '{}': cgroup paths are names separated by '/', without . or ..",
           what, printable(path));
    any = true;
  }
  if (!any || path.back() == '/')
    fail("cgroup.img: bad {} '{}': empty name", what, printable(path));
}

void check_dir(const cgroup_dir_entry& e) {
  check_relative(e.dir_name(), "directory");
  for (const cgroup_prop_entry& p : e.properties())
    if (p.name().empty() || p.name().find('/') != std::string::npos || p.name()[0] == '.' ||
        kForbidden.count(p.name()))
      fail("cgroup.img: directory '{}' has a property '{}' that cannot be restored",
           printable(e.dir_name()), printable(p.name()));
  for (const cgroup_dir_entry& c : e.children()) check_dir(c);
}

[[noreturn]] void fail_prop(int err, const std::string& file, const std::string& value) {
  if (err == EPERM || err == EACCES)
    fail_errno(err,
               "cannot set cgroup property {} to '{}' (cryo runs without CAP_SYS_RESOURCE, "
               "which some properties need; restore with --manage-cgroups=none, or soft onto "
               "existing cgroups, to leave properties alone)",
               file, printable(value));
  fail_errno(err, "cannot set cgroup property {} to '{}'", file, printable(value));
}

void set_perms(const std::string& path, const cgroup_perms& p) {
  struct stat st;
  if (::stat(path.c_str(), &st) < 0) fail_sys("cannot look at {}", path);
  if ((st.st_uid != p.uid() || st.st_gid != p.gid()) && ::chown(path.c_str(), p.uid(), p.gid()) < 0)
    fail_sys("cannot give {} to uid {} gid {}", path, p.uid(), p.gid());
  if ((st.st_mode & 07777) != (p.mode() & 07777) && ::chmod(path.c_str(), p.mode() & 07777) < 0)
    fail_sys("cannot set the mode of {} to {:o}", path, p.mode() & 07777);
}

}  // namespace

CgroupMode parse_cgroup_mode(const std::string& word) {
  for (size_t i = 0; i < std::size(kModeNames); i++)
    if (word == kModeNames[i]) return static_cast<CgroupMode>(i);
  fail("bad mode '{}' for --manage-cgroups: use none, props, soft, full, strict or ignore",
       printable(word));
}

Cgroups::Cgroups(const Plan& plan, CgroupOptions opts) : plan_(plan), opts_(std::move(opts)) {
  if (opts_.mode == CgroupMode::kIgnore) return;
  inventory_entry inv;
  image::read_one(plan_.dir, "inventory.img", image::magic::kInventory, inv);
  root_set_ = inv.root_cg_set();
  if (!image::exists(plan_.dir, "cgroup.img")) {
    if (!opts_.roots.empty())
      log::user(log::kWarn, "--cgroup-root: the images hold no cgroup (cgroup.img): ignored");
    return;  // the dump found every task in its own cgroups: they stay in cryo's
  }
  image::read_one(plan_.dir, "cgroup.img", image::magic::kCgroup, img_);
  have_img_ = true;
  for (int i = 0; i < img_.sets_size(); i++) {
    for (const cg_member_entry& m : img_.sets(i).ctls()) {
      if (m.path() != "/") check_relative(m.path().substr(1), "cgroup path");
      if (m.path().empty() || m.path()[0] != '/')
        fail("cgroup.img: set {}: path '{}' does not start with '/'", img_.sets(i).id(),
             printable(m.path()));
      if (m.has_cgns_prefix() && m.cgns_prefix())
        fail("cgroup.img: set {} was dumped in a cgroup namespace: not supported yet",
             img_.sets(i).id());
    }
    if (!sets_.emplace(img_.sets(i).id(), static_cast<size_t>(i)).second)
      fail("cgroup.img: set {} is there twice", img_.sets(i).id());
  }
  for (const cg_controller_entry& c : img_.controllers())
    for (const cgroup_dir_entry& d : c.dirs()) check_dir(d);
  for (const TaskPlan& t : plan_.tasks)
    if (!t.zombie && t.core.tc().has_cg_set() && t.core.tc().cg_set() != inherited_set(t) &&
        !sets_.count(t.core.tc().cg_set()))
      fail("task {} is in cgroup set {}, which cgroup.img does not hold", t.pid(),
           t.core.tc().cg_set());
  relocate();
  // On a throw, made_'s destructor removes what was made.
  for (const cg_controller_entry& c : img_.controllers())
    for (const cgroup_dir_entry& d : c.dirs()) make(hierarchy_of(c), "/" + d.dir_name(), d);
  check_paths();
}

Cgroups::Made::~Made() {
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it)
    if (::rmdir(it->c_str()) < 0)
      log::warn("cannot remove cgroup {} made for the failed restore: {}", *it,
                std::strerror(errno));
}

uint32_t Cgroups::inherited_set(const TaskPlan& t) const {
  return t.parent >= 0 ? plan_.tasks[static_cast<size_t>(t.parent)].core.tc().cg_set() : root_set_;
}

// --cgroup-root: each hierarchy's one dumped top directory is made at the new root, and the
// tasks' paths below it follow.
void Cgroups::relocate() {
  for (cg_controller_entry& c : *img_.mutable_controllers()) {
    const std::string h = hierarchy_of(c);
    std::string root;
    for (const auto& [ctl, path] : opts_.roots) {
      bool mine = ctl == h || std::count(c.cnames().begin(), c.cnames().end(), ctl);
      if (mine || (ctl.empty() && root.empty())) root = path;
      if (mine) break;
    }
    if (root.empty()) continue;
    if (c.dirs_size() == 0) {
      log::info("--cgroup-root {}: no cgroup of hierarchy {} was dumped: nothing moves", root, h);
      continue;
    }
    if (c.dirs_size() > 1)
      fail(
          "--cgroup-root {}: the tree's cgroups in hierarchy {} have {} separate dumped tops "
          "(/{} and /{}), and only one can move: dump with --cgroup-root {}:/PARENT, a cgroup "
          "holding them all",
          root, h, c.dirs_size(), c.dirs(0).dir_name(), c.dirs(1).dir_name(), h);
    const std::string old = "/" + c.dirs(0).dir_name();
    c.mutable_dirs(0)->set_dir_name(root.substr(1));
    for (cg_set_entry& s : *img_.mutable_sets())
      for (cg_member_entry& m : *s.mutable_ctls())
        if (m.name() == h && under(m.path(), old)) m.set_path(root + m.path().substr(old.size()));
    log::info("hierarchy {}: cgroup {} restored at {}", h, old, root);
  }
}

// Every cgroup a task goes into exists now (cryo's own at the dump are not in the images).
void Cgroups::check_paths() const {
  for (const TaskPlan& t : plan_.tasks) {
    if (t.zombie || !t.core.tc().has_cg_set() || t.core.tc().cg_set() == inherited_set(t)) continue;
    for (const cg_member_entry& m :
         img_.sets(static_cast<int>(sets_.at(t.core.tc().cg_set()))).ctls()) {
      const std::string dir = mounts_.dir(m.name(), m.path());
      if (::access(dir.c_str(), F_OK) < 0)
        fail(
            "task {} belongs in cgroup {}, which does not exist, and the images hold no "
            "directory for it (it was cryo's own at the dump): make it, or restore with "
            "--manage-cgroups=ignore",
            t.pid(), dir);
    }
  }
}

void Cgroups::make(const std::string& hierarchy, const std::string& path,
                   const cgroup_dir_entry& e) {
  const std::string dir = mounts_.dir(hierarchy, path);
  struct stat st;
  const bool existed = ::stat(dir.c_str(), &st) == 0;
  if (existed && !S_ISDIR(st.st_mode)) fail("cgroup {} is not a directory", dir);
  const CgroupMode mode = opts_.mode;
  if (!existed && (mode == CgroupMode::kNone || mode == CgroupMode::kProps))
    fail(
        "cgroup {} does not exist: --manage-cgroups={} needs it there (or restore with "
        "--manage-cgroups=soft to have cryo make it)",
        dir, mode_name(mode));
  if (existed && mode == CgroupMode::kStrict)
    fail(
        "cgroup {} exists already: --manage-cgroups=strict needs every dumped cgroup absent "
        "(remove it, or restore with --manage-cgroups=soft or full)",
        dir);
  if (!existed) {
    // The parents of a top directory first: they are new too when --cgroup-root moved it.
    const std::string base = mounts_.dir(hierarchy);
    for (size_t at = base.size() + 1; at != std::string::npos;) {
      at = dir.find('/', at + 1);
      std::string part = dir.substr(0, at);
      if (::mkdir(part.c_str(), 0755) == 0)
        made_.dirs.push_back(part);
      else if (errno != EEXIST)
        fail_sys("cannot make cgroup {}", part);
    }
    log::info("made cgroup {}", dir);
  }
  if (mode == CgroupMode::kProps || mode == CgroupMode::kFull || mode == CgroupMode::kStrict ||
      (mode == CgroupMode::kSoft && !existed)) {
    write_props(dir, e);
    if (e.has_dir_perms()) set_perms(dir, e.dir_perms());
  }
  for (const cgroup_dir_entry& c : e.children()) make(hierarchy, path + "/" + c.dir_name(), c);
}

void Cgroups::write_props(const std::string& dir, const cgroup_dir_entry& e) const {
  for (const cgroup_prop_entry& p : e.properties()) {
    const std::string file = dir + "/" + p.name();
    auto now = proc::read_cgroup_file(file);
    if (!now) {
      log::user(log::kWarn, fmt::format("cgroup property {} does not exist here: not restored "
                                        "(it was '{}')",
                                        file, printable(p.value())));
      continue;
    }
    if (proc::cgroup_prop_value(p.name(), *now) == p.value()) continue;
    if (p.name() == "devices.list") {
      // What a cgroup may use is set by denying all, then allowing each rule.
      if (int err = proc::write_cgroup_file(dir + "/devices.deny", "a"))
        fail_prop(err, dir + "/devices.deny", "a");
      std::istringstream rules(p.value());
      for (std::string rule; std::getline(rules, rule);)
        if (int err = proc::write_cgroup_file(dir + "/devices.allow", rule))
          fail_prop(err, dir + "/devices.allow", rule);
    } else if (p.name() == "cgroup.subtree_control") {
      std::istringstream names(p.value());
      for (std::string n; names >> n;)
        if (int err = proc::write_cgroup_file(file, "+" + n)) fail_prop(err, file, "+" + n);
    } else if (int err = proc::write_cgroup_file(file, p.value())) {
      fail_prop(err, file, p.value());
    }
    log::debug("cgroup property {} = '{}'", file, printable(p.value()));
    if (p.has_perms()) set_perms(file, p.perms());
  }
}

void Cgroups::place(size_t i, pid_t pid) const {
  if (!have_img_) return;
  const TaskPlan& t = plan_.tasks[i];
  if (!t.core.tc().has_cg_set()) return;
  const uint32_t id = t.core.tc().cg_set();
  if (id == inherited_set(t)) return;  // born in them
  std::map<std::string, std::string> now;
  for (proc::CgroupMember& m : proc::read_cgroup(pid)) now[m.name] = m.path;
  for (const cg_member_entry& m : img_.sets(static_cast<int>(sets_.at(id))).ctls()) {
    if (now[m.name()] == m.path()) continue;
    const std::string file = mounts_.dir(m.name(), m.path()) + "/cgroup.procs";
    if (int err = proc::write_cgroup_file(file, std::to_string(pid)))
      fail_errno(err, "cannot move task {} into cgroup {}{}", t.pid(), file,
                 err == ENOSPC ? " (a cpuset without cpus or mems?)" : "");
  }
  log::debug("task {}: moved into cgroup set {}", t.pid(), id);
}

}  // namespace cryo::restore
