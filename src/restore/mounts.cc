#include "restore/mounts.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <exception>
#include <set>
#include <thread>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "base/strings.h"
#include "image/image.h"
#include "image/mounts.h"
#include "infect/fd_transfer.h"
#include "net/run_tool.h"

namespace cryo::restore {
namespace {

std::string g_tree_root;      // "/proc/ROOT/root" once the tree's namespace is built
std::set<int> g_tree_mounts;  // the ids (at dump) of the mounts of the tree's namespace

// Images are untrusted: a mount point must be a plain absolute path.
void check_path(const std::string& p, const std::string& img) {
  if (p.empty() || p[0] != '/' || p.find("/../") != std::string::npos ||
      (p.size() >= 3 && p.compare(p.size() - 3, 3, "/..") == 0) ||
      p.find('\0') != std::string::npos)
    fail("image {} is corrupt: mount path {} is not a plain absolute path", img, printable(p));
}

void mount_call(const char* src, const std::string& target, const char* fstype, unsigned long flags,
                const char* data, const char* what) {
  if (::mount(src, target.c_str(), fstype, flags, data) < 0)
    fail_sys("cannot {} {} (mount of {} at {})", what, printable(target), src ? src : "-",
             printable(target));
}

}  // namespace

std::string tree_path(const std::string& path, int mnt_id) {
  if (g_tree_root.empty() || path.empty() || path[0] != '/') return path;
  return mnt_id < 0 || g_tree_mounts.count(mnt_id) ? g_tree_root + path : path;
}

MountTree::MountTree(const Plan& plan, const MountOptions& opts) : opts_(opts) {
  if (!plan.own_mounts) {
    if (!opts.root.empty() || !opts.external.empty())
      log::warn("--root and --external mnt[] are ignored: the tree shares cryo's mount namespace");
    return;
  }
  const std::string img = image::mountpoints_image(plan.mnt_ns_id);
  image::Reader r(plan.dir, img, image::kMntsMagic);
  mnt_entry e;
  std::set<uint32_t> seen;
  while (r.next(e)) {
    check_path(e.mountpoint(), img);
    check_path(e.root(), img);
    if (!mounts_.empty() && !seen.count(e.parent_mnt_id()))
      fail("image {} is corrupt: mount {} comes before its parent {}", img, e.mnt_id(),
           e.parent_mnt_id());
    if (!seen.insert(e.mnt_id()).second)
      fail("image {} is corrupt: mount id {} twice", img, e.mnt_id());
    mounts_.push_back(e);
  }
  if (mounts_.empty() || mounts_[0].mountpoint() != "/")
    fail("image {} is corrupt: it has no root mount", img);
  if (!plan.ghosts.empty() || !plan.link_remaps.empty())
    fail(
        "the tree has its own mount namespace and deleted files: restoring deleted files inside "
        "a mount namespace is not supported by cryo yet");
  char abs[PATH_MAX];
  if (!::realpath(plan.dir.c_str(), abs))
    fail_sys("cannot resolve the images directory {}", plan.dir);
  dir_ = abs;
  for (size_t i = 0; i < mounts_.size(); i++) {
    const mnt_entry& m = mounts_[i];
    if (m.fstype() == image::kFsTmpfs && !image::exists(plan.dir, image::tmpfs_image(m.root_dev())))
      fail("tmpfs {} needs image {}, which is missing", printable(m.mountpoint()),
           image::tmpfs_image(m.root_dev()));
    const std::string src = source_of(i);
    struct stat st;
    if (!src.empty() && ::stat(src.c_str(), &st) < 0)
      fail_sys(
          "mount {} of the tree's mount namespace is bound from {}, which cannot be used on this "
          "machine: make it exist{}",
          printable(m.mountpoint()), printable(src),
          m.ext_mount() ? fmt::format(", or give another path with --external mnt[{}]:PATH",
                                      printable(m.ext_key()))
          : i == 0      ? ", or give the root with --root PATH"
                        : "");
  }
}

MountTree::~MountTree() {
  g_tree_root.clear();
  g_tree_mounts.clear();
  if (!yard_.empty() && ::rmdir(yard_.c_str()) < 0 && errno != ENOENT)
    log::warn("cannot remove {}: {}", yard_, std::strerror(errno));
}

uint64_t MountTree::clone_flags() const {
  return own() ? CLONE_NEWNS : 0;
}

// The host path a bind mount comes from at restore, or "" for a mount made otherwise.
std::string MountTree::source_of(size_t i) const {
  const mnt_entry& m = mounts_[i];
  if (m.ext_mount()) {
    auto it = opts_.external.find(m.ext_key());
    if (it == opts_.external.end())
      fail(
          "mount {} of the tree's mount namespace was dumped as external with key {}: give its "
          "source with --external mnt[{}]:PATH",
          printable(m.mountpoint()), printable(m.ext_key()), printable(m.ext_key()));
    return it->second;
  }
  if (i == 0 && !opts_.root.empty()) return opts_.root;
  if (m.has_cryo_host_path()) return m.cryo_host_path();
  return "";
}

std::string MountTree::target_of(uint32_t mnt_id) const {
  auto it = targets_.find(mnt_id);
  if (it == targets_.end()) fail("internal: mount {} is not built yet", mnt_id);
  return it->second;
}

// proc, sysfs and mqueue show the pid, network and IPC namespaces of whoever opens their
// file system context: they are opened by the root task, not by cryo.
bool MountTree::kernel_made_by_tree(const mnt_entry& m) {
  return m.fstype() == image::kFsProc || m.fstype() == image::kFsSysfs ||
         m.fstype() == image::kFsMqueue;
}

void MountTree::open_in_tree(RemoteTask& rt) {
  for (size_t i = 0; i < mounts_.size(); i++) {
    const mnt_entry& m = mounts_[i];
    if (!kernel_made_by_tree(m)) continue;
    const uint64_t name = rt.put_str(0, m.fsname());
    const auto remote = static_cast<int>(rt.check(fmt::format("fsopen({})", m.fsname()).c_str(),
                                                  SYS_fsopen, {name, FSOPEN_CLOEXEC}));
    contexts_[i] = steal_fd(rt.tid(), remote, "file system context");
    rt.syscall(SYS_close, {static_cast<uint64_t>(remote)});
  }
}

void MountTree::mount_in_tree(size_t i, const std::string& target) {
  const mnt_entry& m = mounts_[i];
  const Fd fs = std::move(contexts_.at(i));
  auto config = [&](unsigned cmd, const char* key, const char* value) {
    if (::fsconfig(fs.get(), cmd, key, value, 0) < 0)
      fail_sys("cannot configure {} for {} ({}{}{})", m.fsname(), printable(m.mountpoint()),
               key ? key : "create", value ? "=" : "", value ? value : "");
  };
  // The source mountinfo shows ("proc", ...): fsopen leaves it "none" otherwise.
  if (!m.source().empty()) config(FSCONFIG_SET_STRING, "source", m.source().c_str());
  if (m.sb_flags() & MS_RDONLY) config(FSCONFIG_SET_FLAG, "ro", nullptr);
  for (size_t at = 0, end; at < m.options().size(); at = end + 1) {
    end = m.options().find(',', at);
    if (end == std::string::npos) end = m.options().size();
    const std::string o = m.options().substr(at, end - at);
    const auto eq = o.find('=');
    if (eq == std::string::npos)
      config(FSCONFIG_SET_FLAG, o.c_str(), nullptr);
    else
      config(FSCONFIG_SET_STRING, o.substr(0, eq).c_str(), o.substr(eq + 1).c_str());
  }
  config(FSCONFIG_CMD_CREATE, nullptr, nullptr);
  unsigned attr = 0;
  if (m.flags() & MS_RDONLY) attr |= MOUNT_ATTR_RDONLY;
  if (m.flags() & MS_NOSUID) attr |= MOUNT_ATTR_NOSUID;
  if (m.flags() & MS_NODEV) attr |= MOUNT_ATTR_NODEV;
  if (m.flags() & MS_NOEXEC) attr |= MOUNT_ATTR_NOEXEC;
  Fd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, attr));
  if (!mnt) fail_sys("cannot mount {} for {} (fsmount)", m.fsname(), printable(m.mountpoint()));
  if (::move_mount(mnt.get(), "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0)
    fail_sys("cannot mount {} at {} (move_mount)", m.fsname(), printable(target));
}

void MountTree::build(RemoteTask& root) {
  if (!own()) return;
  const pid_t pid = root.tid();
  open_in_tree(root);
  std::exception_ptr error;
  // A thread of its own: it leaves cryo's fs information (CLONE_FS) to enter the namespace.
  std::thread builder([&] {
    try {
      build_in_namespace(pid);
    } catch (...) {
      error = std::current_exception();
    }
  });
  builder.join();
  if (error) std::rethrow_exception(error);
  g_tree_root = fmt::format("/proc/{}/root", pid);
  for (const mnt_entry& m : mounts_) g_tree_mounts.insert(static_cast<int>(m.mnt_id()));
  log::info("mount tree of task {} built: {} mounts", pid, mounts_.size());
}

void MountTree::build_in_namespace(pid_t pid) {
  if (::unshare(CLONE_FS) < 0) fail_sys("cannot give cryo's mount builder its own fs information");
  Fd ns(::open(fmt::format("/proc/{}/ns/mnt", pid).c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns || ::setns(ns.get(), CLONE_NEWNS) < 0)
    fail_sys("cannot enter the new mount namespace of task {}", pid);
  // Nothing built here may reach cryo's namespace; host mounts still reach binds made here.
  mount_call(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr, "make slave");
  char tmpl[] = "/tmp/.cryo-mnt-XXXXXX";
  if (!::mkdtemp(tmpl)) fail_sys("cannot make a directory to build the mount tree in");
  yard_ = tmpl;
  mount_call("cryo-yard", yard_, "tmpfs", 0, "mode=0700", "mount the yard");
  mount_call(nullptr, yard_, nullptr, MS_PRIVATE, nullptr, "make private");
  const std::string top = yard_ + "/root";
  if (::mkdir(top.c_str(), 0700) < 0) fail_sys("cannot make {}", top);
  for (size_t i = 0; i < mounts_.size(); i++) {
    const std::string target = i == 0 ? top : image::path_join(top, mounts_[i].mountpoint());
    mount_one(i, target);
    targets_[mounts_[i].mnt_id()] = target;
  }
  // Per-mount flags once everything is in place: a read-only mount is filled first.
  for (const mnt_entry& m : mounts_)
    mount_call(nullptr, target_of(m.mnt_id()), nullptr, MS_REMOUNT | MS_BIND | m.flags(), nullptr,
               "set the flags of");
  if (::chdir(top.c_str()) < 0) fail_sys("cannot enter {}", top);
  if (::syscall(SYS_pivot_root, ".", ".") < 0) fail_sys("cannot pivot_root into the tree's root");
  if (::umount2(".", MNT_DETACH) < 0) fail_sys("cannot detach cryo's root from the tree");
  if (::chdir("/") < 0) fail_sys("cannot enter the tree's root");
  // The root could not be shared while it became the root.
  if (mounts_[0].shared_id()) mount_call(nullptr, "/", nullptr, MS_SHARED, nullptr, "share");
}

void MountTree::mount_one(size_t i, const std::string& target) {
  const mnt_entry& m = mounts_[i];
  struct stat st;
  if (::lstat(target.c_str(), &st) < 0) {
    log::warn("mount point {} is missing in the restored tree: made anew", m.mountpoint());
    if (::mkdir(target.c_str(), 0755) < 0) fail_sys("cannot make mount point {}", target);
  }
  const std::string host = source_of(i);
  const mnt_entry* peer = nullptr;    // a mount of its peer group already built
  const mnt_entry* master = nullptr;  // a mount of its master group
  const mnt_entry* same_fs = nullptr;
  for (size_t k = 0; k < i; k++) {
    const mnt_entry& o = mounts_[k];
    if (o.root_dev() != m.root_dev() || !image::path_under(m.root(), o.root())) continue;
    if (m.shared_id() && o.shared_id() == m.shared_id() && !peer) peer = &o;
    if (m.master_id() && o.shared_id() == m.master_id() && !master) master = &o;
    if (!same_fs) same_fs = &o;
  }
  const mnt_entry* from = peer ? peer : master ? master : nullptr;
  const bool fresh = m.fstype() == image::kFsProc || m.fstype() == image::kFsSysfs ||
                     m.fstype() == image::kFsDevpts || m.fstype() == image::kFsMqueue ||
                     m.fstype() == image::kFsTmpfs || m.fstype() == image::kFsAuto;
  if (!from && !host.empty()) {
    mount_call(host.c_str(), target, nullptr, MS_BIND, nullptr, "bind");
  } else if (!from && fresh) {
    // A read-only tmpfs is filled first and made read-only after.
    const bool refill = m.fstype() == image::kFsTmpfs;
    const unsigned long flags =
        (m.sb_flags() | m.flags()) & ~(refill ? static_cast<unsigned long>(MS_RDONLY) : 0UL);
    if (!refill && kernel_made_by_tree(m)) {
      mount_in_tree(i, target);
    } else {
      mount_call(m.source().c_str(), target, m.fsname().c_str(), flags, m.options().c_str(),
                 fmt::format("mount {} on", m.fsname()).c_str());
    }
    if (refill) {
      const std::string img = dir_ + "/" + image::tmpfs_image(m.root_dev());
      net::ToolResult r =
          net::run_tool({"tar", "--extract", "--gzip", "--numeric-owner", "--preserve-permissions",
                         "--xattrs", "--acls", "-C", target, "-f", img},
                        "", "tar", 120);
      if (r.status != 0)
        fail("cannot refill tmpfs {} from {} with tar: {}", m.mountpoint(), img, r.output);
      if (m.sb_flags() & MS_RDONLY)
        mount_call(nullptr, target, nullptr, MS_REMOUNT | m.sb_flags() | m.flags(),
                   m.options().c_str(), "make read-only");
    }
  } else {
    if (!from) from = same_fs;
    if (!from)
      fail("mount {} ({}) of the tree's mount namespace has no source to be bound from",
           printable(m.mountpoint()), printable(m.fsname()));
    const std::string src =
        image::path_join(target_of(from->mnt_id()), image::path_below(m.root(), from->root()));
    mount_call(src.c_str(), target, nullptr, MS_BIND, nullptr, "bind");
  }
  // Propagation: a peer stays in the group it was bound from; a slave of a group of the tree
  // was bound from it and becomes its slave; a slave of a host group is bound from the host
  // (through this namespace's slave copy of it) and stays so; every other mount is private.
  const bool host_master = m.master_id() && !master && !host.empty();
  if (peer) return;
  if (master)
    mount_call(nullptr, target, nullptr, MS_SLAVE, nullptr, "make slave");
  else if (!host_master)
    mount_call(nullptr, target, nullptr, MS_PRIVATE, nullptr, "make private");
  if (m.shared_id() && i != 0) mount_call(nullptr, target, nullptr, MS_SHARED, nullptr, "share");
}

}  // namespace cryo::restore
