#include "rpc/opts.h"

#include <sched.h>

#include <fmt/format.h>

namespace cryo::rpc {
namespace {

class Builder {
 public:
  std::vector<FieldWords> out;

  void flag(const char* field, bool set, const char* option) {
    if (set) out.push_back({field, {option}, {}});
  }
  void value(const char* field, bool set, const char* option, const std::string& v) {
    if (set) out.push_back({field, {option, v}, {}});
  }
  template <typename List, typename F>
  void each(const char* field, const List& list, F&& words_of) {
    for (const auto& item : list) out.push_back({field, words_of(item), {}});
  }
  void refuse(const char* field, bool set, std::string why) {
    if (set) out.push_back({field, {}, std::move(why)});
  }
};

const char* cg_mode(criu_cg_mode m) {
  switch (m) {
    case IGNORE:
      return "ignore";
    case CG_NONE:
      return "none";
    case PROPS:
      return "props";
    case SOFT:
      return "soft";
    case FULL:
      return "full";
    case STRICT:
      return "strict";
    case DEFAULT:
      return nullptr;  // CRIU's default mode: --manage-cgroups alone
  }
  return nullptr;
}

}  // namespace

std::vector<FieldWords> option_words(const criu_opts& o, bool dumping) {
  Builder b;
  using W = std::vector<std::string>;
  b.flag("leave_running", o.leave_running(), "--leave-running");
  b.flag("ext_unix_sk", o.ext_unix_sk(), "--ext-unix-sk");
  b.flag("tcp_established", o.tcp_established(), "--tcp-established");
  b.flag("evasive_devices", o.evasive_devices(), "--evasive-devices");
  b.flag("shell_job", o.shell_job(), "--shell-job");
  b.flag("file_locks", o.file_locks(), "--file-locks");
  if (o.has_ps()) {
    W w;
    if (dumping) w.push_back("--page-server");
    if (o.ps().has_address()) w.insert(w.end(), {"--address", o.ps().address()});
    if (o.ps().has_port()) w.insert(w.end(), {"--port", std::to_string(o.ps().port())});
    if (o.ps().has_fd()) w.insert(w.end(), {"--ps-socket", std::to_string(o.ps().fd())});
    if (!w.empty()) b.out.push_back({"ps", w, {}});
  }
  // runc sends the rootfs on dump too; CRIU uses it only to restore.
  b.value("root", o.has_root() && !dumping, "--root", o.root());
  b.value("parent_img", o.has_parent_img(), "--prev-images-dir", o.parent_img());
  b.flag("track_mem", o.track_mem(), "--track-mem");
  b.flag("auto_dedup", o.auto_dedup(), "--auto-dedup");
  b.flag("link_remap", o.link_remap(), "--link-remap");
  b.each("veths", o.veths(), [](const criu_veth_pair& v) {
    return W{"--veth-pair", v.if_in() + "=" + v.if_out()};
  });
  b.value("cpu_cap", o.has_cpu_cap(), "--cpu-cap", std::to_string(o.cpu_cap()));
  b.flag("force_irmap", o.force_irmap(), "--force-irmap");
  b.flag("exec_cmd", o.exec_cmd_size() > 0, "--exec-cmd");
  b.each("ext_mnt", o.ext_mnt(), [](const ext_mount_map& m) {
    return W{"--ext-mount-map", m.key() + ":" + m.val()};
  });
  b.flag("manage_cgroups", o.manage_cgroups(), "--manage-cgroups");
  b.each("cg_root", o.cg_root(), [](const cgroup_root& c) {
    return W{"--cgroup-root", c.has_ctrl() ? c.ctrl() + ":" + c.path() : c.path()};
  });
  b.flag("rst_sibling", o.rst_sibling(), "--restore-sibling");
  b.each("inherit_fd", o.inherit_fd(), [](const inherit_fd& f) {
    return W{"--inherit-fd", fmt::format("fd[{}]:{}", f.fd(), f.key())};
  });
  b.value("auto_ext_mnt", o.auto_ext_mnt(), "--ext-mount-map", "auto");
  b.flag("ext_sharing", o.ext_sharing(), "--enable-external-sharing");
  b.flag("ext_masters", o.ext_masters(), "--enable-external-masters");
  b.each("skip_mnt", o.skip_mnt(), [](const std::string& m) { return W{"--skip-mnt", m}; });
  b.each("enable_fs", o.enable_fs(), [](const std::string& f) { return W{"--enable-fs", f}; });
  b.each("unix_sk_ino", o.unix_sk_ino(),
         [](const unix_sk& u) { return W{"--ext-unix-sk=" + std::to_string(u.inode())}; });
  if (o.has_manage_cgroups_mode()) {
    const char* m = cg_mode(o.manage_cgroups_mode());
    b.out.push_back({"manage_cgroups_mode",
                     {m ? std::string("--manage-cgroups=") + m : std::string("--manage-cgroups")},
                     {}});
  }
  b.value("ghost_limit", o.has_ghost_limit(), "--ghost-limit", std::to_string(o.ghost_limit()));
  b.each("irmap_scan_paths", o.irmap_scan_paths(), [](const std::string& p) {
    return W{"--irmap-scan-path", p};
  });
  b.each("external", o.external(), [](const std::string& e) { return W{"--external", e}; });
  if (o.empty_ns()) {
    if (o.empty_ns() == CLONE_NEWNET)
      b.out.push_back({"empty_ns", {"--empty-ns", "net"}, {}});
    else
      b.refuse("empty_ns", true,
               fmt::format("empty_ns {:#x}: only CLONE_NEWNET (--empty-ns net) is an empty "
                           "namespace CRIU knows",
                           o.empty_ns()));
  }
  b.each("join_ns", o.join_ns(), [](const join_namespace& j) {
    std::string v = j.ns() + ":" + j.ns_file();
    if (j.has_extra_opt()) v += "," + j.extra_opt();
    return W{"--join-ns", v};
  });
  b.value("cgroup_props", o.has_cgroup_props(), "--cgroup-props", o.cgroup_props());
  b.value("cgroup_props_file", o.has_cgroup_props_file(), "--cgroup-props-file",
          o.cgroup_props_file());
  b.each("cgroup_dump_controller", o.cgroup_dump_controller(), [](const std::string& c) {
    return W{"--cgroup-dump-controller", c};
  });
  b.value("freeze_cgroup", o.has_freeze_cgroup(), "--freeze-cgroup", o.freeze_cgroup());
  b.value("timeout", o.has_timeout(), "--timeout", std::to_string(o.timeout()));
  b.flag("tcp_skip_in_flight", o.tcp_skip_in_flight(), "--skip-in-flight");
  b.flag("weak_sysctls", o.weak_sysctls(), "--weak-sysctls");
  b.flag("lazy_pages", o.lazy_pages(), "--lazy-pages");
  b.value("status_fd", o.has_status_fd(), "--status-fd", std::to_string(o.status_fd()));
  // runc always sets it. Nothing to hand over unless the tree holds a pty whose master is
  // elsewhere, and the dump refuses such a pty by name (tty.cc).
  (void)o.orphan_pts_master();
  b.flag("tcp_close", o.tcp_close(), "--tcp-close");
  b.value("lsm_profile", o.has_lsm_profile(), "--lsm-profile", o.lsm_profile());
  b.value("tls_cacert", o.has_tls_cacert(), "--tls-cacert", o.tls_cacert());
  b.value("tls_cacrl", o.has_tls_cacrl(), "--tls-cacrl", o.tls_cacrl());
  b.value("tls_cert", o.has_tls_cert(), "--tls-cert", o.tls_cert());
  b.value("tls_key", o.has_tls_key(), "--tls-key", o.tls_key());
  b.flag("tls", o.tls(), "--tls");
  b.flag("tls_no_cn_verify", o.tls_no_cn_verify(), "--tls-no-cn-verify");
  b.value("cgroup_yard", o.has_cgroup_yard(), "--cgroup-yard", o.cgroup_yard());
  b.value("pre_dump_mode", o.has_pre_dump_mode(), "--pre-dump-mode",
          o.pre_dump_mode() == VM_READ ? "read" : "splice");
  b.refuse("pidfd_store_sk", o.has_pidfd_store_sk(),
           "a pidfd store socket (pidfd_store_sk) is not supported by cryo yet");
  b.value("lsm_mount_context", o.has_lsm_mount_context(), "--lsm-mount-context",
          o.lsm_mount_context());
  if (o.has_network_lock())
    b.out.push_back({"network_lock",
                     {"--network-lock", o.network_lock() == NFTABLES ? "nftables"
                                        : o.network_lock() == SKIP   ? "skip"
                                                                     : "iptables"},
                     {}});
  b.flag("mntns_compat_mode", o.mntns_compat_mode(), "--mntns-compat-mode");
  b.flag("skip_file_rwx_check", o.skip_file_rwx_check(), "--skip-file-rwx-check");
  b.flag("unprivileged", o.unprivileged(), "--unprivileged");
  b.flag("leave_stopped", o.leave_stopped(), "--leave-stopped");
  b.flag("display_stats", o.display_stats(), "--display-stats");
  b.flag("allow_uprobes", o.allow_uprobes(), "--allow-uprobes");
  b.flag("ghost_fiemap", o.ghost_fiemap(), "--ghost-fiemap");
  b.value("file_validation_method", o.has_file_validation_method(), "--file-validation",
          o.file_validation_method() == FILE_SIZE ? "filesize" : "buildid");
  return b.out;
}

}  // namespace cryo::rpc
