#include "dump/mounts.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <sstream>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "image/image.h"
#include "image/mounts.h"
#include "kernel/namespace.h"
#include "net/run_tool.h"
#include "proc/proc.h"

namespace cryo::dump {
namespace {

uint64_t ns_inode(pid_t pid) {
  struct stat st;
  const std::string path = fmt::format("/proc/{}/ns/mnt", pid);
  if (::stat(path.c_str(), &st) < 0) fail_sys("task {}: cannot read its mount namespace", pid);
  return st.st_ino;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string w; std::getline(in, w, ',');)
    if (!w.empty()) out.push_back(w);
  return out;
}

// File systems mounted anew at restore (their content is the kernel's).
uint32_t fresh_kind(const std::string& fstype) {
  if (fstype == "proc") return image::kFsProc;
  if (fstype == "sysfs") return image::kFsSysfs;
  if (fstype == "devpts") return image::kFsDevpts;
  if (fstype == "mqueue") return image::kFsMqueue;
  return image::kFsUnsupported;
}

}  // namespace

uint32_t mount_flags(const std::string& opts) {
  uint32_t f = 0;
  for (const std::string& o : split(opts)) {
    if (o == "ro") f |= MS_RDONLY;
    if (o == "nosuid") f |= MS_NOSUID;
    if (o == "nodev") f |= MS_NODEV;
    if (o == "noexec") f |= MS_NOEXEC;
    if (o == "noatime") f |= MS_NOATIME;
    if (o == "nodiratime") f |= MS_NODIRATIME;
    if (o == "relatime") f |= MS_RELATIME;
    if (o == "nosymfollow") f |= MS_NOSYMFOLLOW;
  }
  return f;
}

uint32_t sb_flags(const std::string& opts, std::string* rest) {
  uint32_t f = 0;
  rest->clear();
  for (const std::string& o : split(opts)) {
    if (o == "ro")
      f |= MS_RDONLY;
    else if (o == "sync")
      f |= MS_SYNCHRONOUS;
    else if (o == "dirsync")
      f |= MS_DIRSYNC;
    else if (o == "mand")
      f |= MS_MANDLOCK;
    else if (o == "lazytime")
      f |= MS_LAZYTIME;
    else if (o != "rw")
      *rest += (rest->empty() ? "" : ",") + o;
  }
  return f;
}

MountNamespaces::MountNamespaces(const std::vector<FrozenTask>& tasks, const MountOptions& opts)
    : opts_(opts) {
  const uint64_t mine = ns_inode(::getpid());
  const FrozenTask& root = tasks.front();
  const uint64_t theirs = ns_inode(root.pid);
  for (const FrozenTask& t : tasks) {
    if (t.zombie || ns_inode(t.pid) == theirs) continue;
    fail(
        "task {} is in another mount namespace than the root task {}: only a tree whose "
        "tasks share one mount namespace (cryo's, or one of its own) can be dumped",
        t.pid, root.pid);
  }
  if (theirs == mine) return;
  root_ = root.pid;
  const std::vector<proc::Mount> host = proc::read_mountinfo(::getpid());
  const std::vector<proc::Mount> mounts = proc::read_mountinfo(root_);
  for (const proc::Mount& m : mounts) {
    bool skip = false;
    for (const std::string& s : opts_.skip) skip |= image::path_under(m.mountpoint, s);
    if (skip) {
      log::info("mount {} ({}) is left out (--skip-mnt)", m.mountpoint, m.fstype);
      continue;
    }
    for (const proc::Mount& other : mounts)
      if (&other != &m && other.mountpoint == m.mountpoint && other.parent == m.id)
        fail(
            "mount {} ({}) of task {}'s mount namespace is hidden under another mount at the "
            "same place: cryo cannot dump a hidden mount (leave it out with --skip-mnt {})",
            m.mountpoint, m.fstype, root_, m.mountpoint);
    if (!mounts_.empty() && std::none_of(mounts_.begin(), mounts_.end(), [&](const mnt_entry& e) {
          return e.mnt_id() == m.parent;
        }))
      fail(
          "mount {} ({}) of task {}'s mount namespace is on a mount its root does not show: "
          "cryo dumps the mounts below the tasks' root (leave it out with --skip-mnt {})",
          m.mountpoint, m.fstype, root_, m.mountpoint);
    describe(m, host);
  }
  if (mounts_.empty() || mounts_.front().mountpoint() != "/")
    fail("task {}: its mount namespace shows no root mount in /proc/{}/mountinfo", root_, root_);
  log::info("task {} has a mount namespace of its own: {} mounts", root_, mounts_.size());
}

const mnt_entry* MountNamespaces::in_tree_source(const proc::Mount& m) const {
  const uint32_t dev = kernel_dev(m.major, m.minor);
  for (const mnt_entry& e : mounts_)
    if (e.root_dev() == dev && image::path_under(m.root, e.root())) return &e;
  return nullptr;
}

void MountNamespaces::describe(const proc::Mount& m, const std::vector<proc::Mount>& host) {
  mnt_entry e;
  e.set_mnt_id(m.id);
  e.set_parent_mnt_id(m.parent);
  e.set_root_dev(kernel_dev(m.major, m.minor));
  e.set_flags(mount_flags(m.mount_opts));
  std::string rest;
  e.set_sb_flags(sb_flags(m.super_opts, &rest));
  e.set_options(rest);
  e.set_root(m.root);
  e.set_mountpoint(m.mountpoint);
  e.set_source(m.source);
  e.set_fsname(m.fstype);
  e.set_fstype(image::kFsUnsupported);
  if (m.shared) e.set_shared_id(m.shared);
  if (m.master) e.set_master_id(m.master);
  const std::string where = fmt::format("/proc/{}/root{}", root_, m.mountpoint);

  if (auto ext = opts_.external.find(m.mountpoint); ext != opts_.external.end()) {
    e.set_ext_mount(true);
    e.set_ext_key(ext->second);
    mounts_.push_back(std::move(e));
    return;
  }
  // A master outside the tree must be the group of the host mount it is bound from.
  bool master_inside = !m.master;
  for (const mnt_entry& o : mounts_) master_inside |= o.shared_id() == m.master;
  const uint32_t fresh = fresh_kind(m.fstype);
  if (fresh && m.root == "/") {
    e.set_fstype(fresh);
  } else if (m.fstype == "tmpfs" && m.root == "/" && !in_tree_source(m)) {
    e.set_fstype(image::kFsTmpfs);
    bool on_host = false;
    for (const proc::Mount& h : host) on_host |= h.major == m.major && h.minor == m.minor;
    if (on_host) e.set_fstype(image::kFsUnsupported);  // a host's tmpfs: bound, not copied
  }
  if (e.fstype() == image::kFsUnsupported && !in_tree_source(m)) {
    // A bind mount of a host directory: its path from cryo's root, checked to be the same.
    const proc::Mount* best = nullptr;
    for (const proc::Mount& h : host)
      if (h.major == m.major && h.minor == m.minor && image::path_under(m.root, h.root) &&
          (!best || h.root.size() > best->root.size()))
        best = &h;
    struct stat a, b;
    if (best) {
      const std::string path =
          image::path_join(best->mountpoint, image::path_below(m.root, best->root));
      if (::stat(path.c_str(), &a) == 0 && ::stat(where.c_str(), &b) == 0 && a.st_dev == b.st_dev &&
          a.st_ino == b.st_ino) {
        e.set_cryo_host_path(path);
        if (m.master && !master_inside && best->shared != m.master) best = nullptr;
      } else {
        best = nullptr;
      }
    }
    if (!best &&
        std::find(opts_.enable_fs.begin(), opts_.enable_fs.end(), m.fstype) ==
            opts_.enable_fs.end() &&
        std::find(opts_.enable_fs.begin(), opts_.enable_fs.end(), "all") == opts_.enable_fs.end())
      fail(
          "mount {} ({}, source {}) of task {}'s mount namespace cannot be dumped: cryo "
          "restores bind mounts of directories it can reach, tmpfs, proc, sysfs, devpts and "
          "mqueue{}. Name it with --external mnt[{}]:KEY (and give --external mnt[KEY]:PATH "
          "at restore), leave it out with --skip-mnt {}, or have it mounted anew with "
          "--enable-fs {}",
          m.mountpoint, m.fstype, m.source, root_,
          m.master && !master_inside
              ? fmt::format(" (its master peer group {} is outside)", m.master)
              : "",
          m.mountpoint, m.mountpoint, m.fstype);
    if (!best) {
      e.set_fstype(image::kFsAuto);
      e.clear_cryo_host_path();
    }
  } else if (m.master && !master_inside) {
    fail(
        "mount {} ({}) of task {}'s mount namespace receives mounts from peer group {} outside "
        "it: not supported (make it private or shared, or leave it out with --skip-mnt {})",
        m.mountpoint, m.fstype, root_, m.master, m.mountpoint);
  }
  mounts_.push_back(std::move(e));
}

void MountNamespaces::set_ids(task_kobj_ids_entry* ids) const {
  ids->set_mnt_ns_id(own() ? kOwnId : kHostId);
}

void MountNamespaces::write(const std::string& dir) const {
  if (!own()) return;
  image::Writer w(dir, image::mountpoints_image(kOwnId), image::kMntsMagic);
  for (const mnt_entry& e : mounts_) w.put(e);
  w.close();
  for (const mnt_entry& e : mounts_) {
    if (e.fstype() != image::kFsTmpfs) continue;
    // tar reads the tmpfs through the root's view of it; --one-file-system keeps it to this
    // mount (what is mounted inside is dumped on its own).
    // The mount alone, without what is mounted on it: a detached copy made inside the
    // namespace (open_tree accepts only mounts of the caller's namespace).
    const std::string at = fmt::format("/proc/{}/root{}", root_, e.mountpoint());
    Fd mp(::open(at.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!mp) fail_sys("cannot open tmpfs {} of task {}", e.mountpoint(), root_);
    Fd alone;
    kernel::in_namespace(fmt::format("/proc/{}/ns/mnt", root_), CLONE_NEWNS, [&] {
      alone.reset(static_cast<int>(
          ::open_tree(mp.get(), "", AT_EMPTY_PATH | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)));
      if (!alone) fail_sys("cannot make a copy of tmpfs {} of task {}", e.mountpoint(), root_);
    });
    const std::string from = fmt::format("/proc/{}/fd/{}", ::getpid(), alone.get());
    const std::string to = dir + "/" + image::tmpfs_image(e.root_dev());
    net::ToolResult r = net::run_tool(
        {"tar", "--create", "--gzip", "--one-file-system", "--numeric-owner",
         "--preserve-permissions", "--sparse", "--xattrs", "--acls", "-C", from, "-f", to, "."},
        "", "tar", 120);
    if (r.status != 0)
      fail("cannot save the files of tmpfs {} (task {}) with tar: {}", e.mountpoint(), root_,
           r.output);
    if (::chmod(to.c_str(), 0600) < 0) fail_sys("cannot make {} private", to);
    log::info("tmpfs {} saved in {}", e.mountpoint(), image::tmpfs_image(e.root_dev()));
  }
}

}  // namespace cryo::dump
