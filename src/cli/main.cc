// cryo: checkpoint/restore of Linux process trees.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <map>

#include "base/error.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "cli/action_script.h"
#include "cli/check.h"
#include "cli/options.h"
#include "dump/dedup.h"
#include "dump/dump.h"
#include "image/image.h"
#include "imgtool/imgtool.h"
#include "pages/lazy_daemon.h"
#include "pageserver/server.h"
#include "restore/restore.h"
#include "rpc/rpc.h"

namespace {

// The log file is relative to the work directory (-W, else -D), as with CRIU.
std::string log_path(const cryo::cli::Options& o) {
  if (o.log_file.empty() || o.log_file == "-" || o.log_file[0] == '/') return o.log_file;
  std::string base = o.work_dir.empty() ? o.images_dir : o.work_dir;
  return base + "/" + o.log_file;
}

cryo::pageserver::TlsOptions tls_options(const cryo::cli::Options& o) {
  cryo::pageserver::TlsOptions t;
  t.enabled = o.tls;
  t.cacert = o.tls_cacert;
  t.cacrl = o.tls_cacrl;
  t.cert = o.tls_cert;
  t.key = o.tls_key;
  t.no_cn_verify = o.tls_no_cn_verify;
  return t;
}

// Whether --external RES names a network resource (net_options takes those).
bool net_external(const std::string& e) {
  return e.rfind("net[", 0) == 0;
}

// --external mnt[A]:B and -M A:B, as pairs A -> B (dump: mount point -> key; restore:
// key -> path). Other kinds of external resources are not supported yet.
std::map<std::string, std::string> mount_externals(const cryo::cli::Options& o) {
  std::map<std::string, std::string> out;
  for (const std::string& e : o.external) {
    if (net_external(e)) continue;
    size_t close = e.find("]:");
    if (e.rfind("mnt[", 0) != 0 || close == std::string::npos || close == 4 ||
        close + 2 == e.size())
      cryo::fail(
          "--external {}: cryo supports only mounts, as mnt[MOUNTPOINT]:KEY (dump) or "
          "mnt[KEY]:PATH (restore), and network namespaces, as net[INODE]:KEY (dump)",
          e);
    out[e.substr(4, close - 4)] = e.substr(close + 2);
  }
  for (const std::string& m : o.ext_mount_map) {
    size_t colon = m.find(':');
    if (m == "auto" || colon == std::string::npos || colon == 0 || colon + 1 == m.size())
      cryo::fail(
          "--ext-mount-map {}: give KEY:VAL (dump: MOUNTPOINT:KEY, restore: KEY:PATH); 'auto' "
          "is not supported by cryo",
          m);
    out[m.substr(0, colon)] = m.substr(colon + 1);
  }
  return out;
}

// --empty-ns net and --external net[INODE]:KEY of a dump.
cryo::dump::NetNsOptions dump_net_options(const cryo::cli::Options& o) {
  cryo::dump::NetNsOptions net;
  net.empty = o.empty_ns & CLONE_NEWNET;
  for (const std::string& e : o.external) {
    if (!net_external(e)) continue;
    const size_t close = e.find("]:");
    char* end = nullptr;
    const unsigned long long ino =
        close == std::string::npos ? 0 : std::strtoull(e.c_str() + 4, &end, 10);
    if (!ino || end != e.c_str() + close || close + 2 == e.size())
      cryo::fail(
          "--external {}: give net[INODE]:KEY, INODE the network namespace's (stat -L -c %i "
          "/proc/PID/ns/net)",
          e);
    net.external[ino] = e.substr(close + 2);
  }
  return net;
}

// One action, as parsed from the command line or from an RPC request; throws Error.
int execute(const cryo::cli::Options& o) {
  const bool dumps = o.action == "dump" || o.action == "pre-dump";
  if (dumps || o.action == "restore" || o.action == "dedup" || o.action == "page-server" ||
      o.action == "lazy-pages") {
    struct stat st;
    if (::stat(o.images_dir.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
      cryo::fail("images directory {} does not exist or is not a directory", o.images_dir);
  }
  cryo::log::init(log_path(o), o.verbosity);
  if (o.action == "check") return cryo::cli::check(o);
  if (o.action == "swrk") return cryo::rpc::swrk(o, execute);
  if (o.action == "service") return cryo::rpc::service(o, execute);
  if (o.action == "page-server") {
    if (o.port < 0 && o.ps_socket < 0)
      cryo::fail("page-server needs --port PORT (0 for any free port) or --ps-socket FD");
    cryo::pageserver::ServerOptions s;
    s.dir = o.images_dir;
    s.prev = o.prev_images_dir;
    s.address = o.address;
    s.port = static_cast<uint16_t>(std::max(o.port, 0));
    s.daemon = o.restore_detached;
    s.status_fd = o.status_fd;
    s.ps_socket = o.ps_socket;
    s.tls = tls_options(o);
    return cryo::pageserver::run_server(s);
  }
  if (o.action == "lazy-pages") {
    if (o.restore_detached)
      cryo::fail("lazy-pages -d is not supported yet: start it in the background ('&')");
    cryo::pages::DaemonOptions l;
    l.dir = o.images_dir;
    l.work_dir = o.work_dir;
    l.page_server = o.page_server;
    if (o.page_server && (o.address.empty() || o.port <= 0))
      cryo::fail("lazy-pages --page-server needs the source's --address ADDR and --port PORT");
    l.address = o.address;
    l.port = static_cast<uint16_t>(std::max(o.port, 0));
    l.tls = tls_options(o);
    return cryo::pages::run_daemon(l);
  }
  if (o.lazy_pages && o.action != "dump" && o.action != "restore")
    cryo::fail("--lazy-pages is for dump and restore, not {}", o.action);
  // The RPC client's notify callbacks, then --action-script's scripts.
  cryo::hooks::Hooks hooks;
  if (o.hooks) hooks = *o.hooks;
  cryo::cli::add_action_scripts(o, &hooks);
  // Ctrl-C, SIGTERM, SIGHUP and SIGQUIT abort a dump or restore cleanly: the dumped tree
  // is put back and runs on, a half-restored one is removed.
  cryo::interrupt_point();
  if (dumps) {
    if (o.tree == 0) cryo::fail("{} needs the root of the tree: -t PID", o.action);
    cryo::dump::Options d;
    d.tree = o.tree;
    d.dir = o.images_dir;
    d.work_dir = o.work_dir;
    d.leave_running = o.leave_running;
    d.leave_stopped = o.leave_stopped;
    d.shell_job = o.shell_job;
    d.file_locks = o.file_locks;
    d.ext_unix_sk = o.ext_unix_sk;
    d.ghost_limit = o.ghost_limit;
    d.link_remap = o.link_remap;
    d.timeout = o.timeout;
    d.display_stats = o.display_stats;
    d.stats_json = o.stats_json;
    d.tcp_established = o.tcp_established;
    d.tcp_close = o.tcp_close;
    d.skip_in_flight = o.skip_in_flight;
    if (!o.network_lock.empty()) d.network_lock = cryo::net::parse_lock_method(o.network_lock);
    d.pre_dump = o.action == "pre-dump";
    d.track_mem = o.track_mem;
    d.prev_dir = o.prev_images_dir;
    d.auto_dedup = o.auto_dedup;
    d.hooks = &hooks;
    d.mounts.external = mount_externals(o);
    d.net = dump_net_options(o);
    if (!o.inherit_fds.empty() || !o.join_ns.empty())
      cryo::fail("--inherit-fd and --join-ns are restore options: dump without them");
    d.mounts.skip = o.skip_mnt;
    for (const std::string& fs : o.enable_fs)
      for (size_t at = 0; at <= fs.size();) {
        size_t end = std::min(fs.find(',', at), fs.size());
        if (end > at) d.mounts.enable_fs.push_back(fs.substr(at, end - at));
        at = end + 1;
      }
    if (!o.root.empty()) cryo::fail("--root is a restore option: dump without it");
    d.page_server = o.page_server;
    d.ps.address = o.address;
    d.ps.ps_socket = o.ps_socket;
    d.ps.tls = tls_options(o);
    d.cgroups.ignore = o.manage_cgroups == "ignore";
    d.cgroups.roots = o.cgroup_roots;
    d.cgroups.props = o.cgroup_props;
    d.cgroups.props_file = o.cgroup_props_file;
    d.cgroups.dump_controllers = o.cgroup_dump_controllers;
    d.freeze_cgroup = o.freeze_cgroup;
    if (o.page_server && o.ps_socket < 0) {
      if (o.address.empty() || o.port < 0)
        cryo::fail("--page-server needs --address ADDR and --port PORT (or --ps-socket FD)");
      if (o.port == 0) cryo::fail("--page-server: --port 0 names no server: give its port");
      d.ps.port = static_cast<uint16_t>(o.port);
    }
    d.lazy_pages = o.lazy_pages;
    if (o.lazy_pages) {
      if (o.port <= 0)
        cryo::fail(
            "dump --lazy-pages needs --port PORT (and --address ADDR to listen on one address): "
            "the lazy-pages daemon fetches the pages there");
      if (o.page_server || o.leave_running || o.leave_stopped)
        cryo::fail(
            "dump --lazy-pages with {} is not supported: the images are written locally and the "
            "tree is killed once the lazy-pages daemon has its pages",
            o.page_server     ? "--page-server"
            : o.leave_running ? "--leave-running"
                              : "--leave-stopped");
      d.ps.port = static_cast<uint16_t>(o.port);
    }
    cryo::dump::run(d);
    cryo::log::info(
        "{}", d.pre_dump ? "Pre-dumping finished successfully" : "Dumping finished successfully");
    return 0;
  }
  if (o.action == "dedup") {
    cryo::dump::dedup(o.images_dir);
    return 0;
  }
  if (o.action == "restore") {
    if (o.auto_dedup)
      cryo::fail("--auto-dedup on restore is not supported by cryo yet: restore without it");
    cryo::restore::Options r;
    r.dir = o.images_dir;
    r.detached = o.restore_detached;
    r.sibling = o.restore_sibling;
    if (r.sibling && !r.detached)
      cryo::fail("--restore-sibling needs -d: cryo cannot wait for a task that is not its child");
    r.leave_stopped = o.leave_stopped;
    r.shell_job = o.shell_job;
    r.file_locks = o.file_locks;
    r.ext_unix_sk = o.ext_unix_sk;
    r.pidfile = o.pidfile;
    r.display_stats = o.display_stats;
    r.stats_json = o.stats_json;
    r.tcp_established = o.tcp_established;
    r.tcp_close = o.tcp_close;
    r.network_lock = o.network_lock;
    r.lazy_pages = o.lazy_pages;
    r.work_dir = o.work_dir;
    r.hooks = &hooks;
    r.mounts.root = o.root;
    r.mounts.external = mount_externals(o);
    r.net.empty = o.empty_ns & CLONE_NEWNET;
    // A pipe of the tree (pipe:[INODE], runc's stdio) or an external network namespace.
    for (const auto& [fd, key] : o.inherit_fds) {
      if (::fcntl(fd, F_GETFD) < 0)
        cryo::fail("--inherit-fd fd[{}]:{}: cryo has no open fd {} to give the tree", fd, key, fd);
      auto& to = key.rfind("pipe:[", 0) == 0 ? r.inherit_fds : r.net.inherit;
      if (!to.emplace(key, fd).second) cryo::fail("--inherit-fd: key {} given twice", key);
    }
    for (const auto& [kind, target] : o.join_ns)
      (kind == "net" ? r.net.join : r.net.join_uts) = target;
    if (!o.skip_mnt.empty() || !o.enable_fs.empty())
      cryo::fail("--skip-mnt and --enable-fs are dump options: restore without them");
    r.cgroups.mode = cryo::restore::parse_cgroup_mode(o.manage_cgroups);
    r.cgroups.roots = o.cgroup_roots;
    return cryo::restore::run(r);
  }
  cryo::cli::check_action(o);  // parse() let only these actions through
  return 1;
}

int run(int argc, char** argv) {
  // The image tool (decode, encode, show) has its own command line.
  if (argc > 1 && cryo::imgtool::is_verb(argv[1]))
    return cryo::imgtool::run(argv[1], argc - 1, argv + 1);
  // From the first instruction on, a stop signal is noted, not fatal: a dump or restore acts
  // on it at its next safe point; other actions give the signals their default back below.
  cryo::catch_stop_signals();
  cryo::cli::Options o;
  try {
    if (!cryo::cli::parse(argc, argv, &o)) return 0;
  } catch (const cryo::Error& e) {
    std::fprintf(stderr, "Error: %s\n", e.what());
    return 1;
  }
  // swrk and service run dumps and restores, and act on stop signals themselves.
  const bool dumps = o.action == "dump" || o.action == "pre-dump";
  if (!dumps && o.action != "restore" && o.action != "swrk" && o.action != "service" &&
      o.action != "page-server") {
    cryo::default_stop_signals();
    if (int sig = cryo::stop_signal()) ::raise(sig);
  }
  try {
    return execute(o);
  } catch (const cryo::Error& e) {
    cryo::log::error("{}", e.what());
    // A stop signal that came before the failure is why cryo stopped, whatever failed first.
    if (cryo::stop_signal() && std::strstr(e.what(), "interrupted by") == nullptr) {
      try {
        cryo::interrupt_point();
      } catch (const cryo::Error& stop) {
        cryo::log::error("{}", stop.what());
      }
    }
    return 1;
  } catch (const std::exception& e) {
    cryo::log::error("internal: {}", e.what());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  cryo::image::silence_protobuf_log();
  // A dying reader of our output must not kill cryo mid-dump.
  ::signal(SIGPIPE, SIG_IGN);
  // A restore holds every file of the tree open at once: allow as many fds as we may.
  rlimit nofile;
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }
  return run(argc, argv);
}
