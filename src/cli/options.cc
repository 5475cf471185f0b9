#include "cli/options.h"

#include <getopt.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>

#include "base/error.h"
#include "pageserver/connection.h"

namespace cryo::cli {

// CRIU's short options: every letter CRIU takes, with the same argument kinds.
const char kShortOptions[] = "dSsRt:hD:o:v::x::Vr:jJ:lW:L:M:";

namespace {

using A = Arg;
using S = Status;

// Every option of CRIU 4.2, in the order of CRIU's help, then cryo's own.
constexpr OptionSpec kTable[] = {
    // Common options.
    {"verbosity", 'v', A::kOptional, S::kImplemented, false, "NUM",
     "-v raises the log level by one (-vv by two ...); -vNUM or --verbosity=NUM sets it: 0 "
     "nothing, 1 errors, 2 warnings (default), 3 information, 4 debug"},
    {"log-file", 'o', A::kRequired, S::kImplemented, false, "FILE",
     "log file, relative to the work directory ('-' for stderr; created 0600)"},
    {"images-dir", 'D', A::kRequired, S::kImplemented, false, "DIR",
     "directory of the image files (default: the current directory; must exist)"},
    {"work-dir", 'W', A::kRequired, S::kImplemented, false, "DIR",
     "directory for the log (default: the images directory)"},
    {"pidfile", 0, A::kRequired, S::kImplemented, false, "FILE",
     "restore: write the root task's PID to FILE; service: the service's PID (must not "
     "exist; created 0600)"},
    {"display-stats", 0, A::kNone, S::kImplemented, true, nullptr, "print dump/restore statistics"},
    {"stats-json", 0, A::kRequired, S::kImplemented, false, "FILE",
     "write dump/restore statistics as JSON to FILE (cryo's own option)"},
    {"config", 0, A::kRequired, S::kImplemented, false, "FILE",
     "read options from FILE (instead of the default configuration files)"},
    {"no-default-config", 0, A::kNone, S::kImplemented, false, nullptr,
     "do not read /etc/criu/default.conf and ~/.criu/default.conf"},
    {"help", 'h', A::kNone, S::kImplemented, false, nullptr, "print this help"},
    {"version", 'V', A::kNone, S::kImplemented, false, nullptr,
     "print the CRIU version cryo implements and cryo's own version"},
    // Dump and restore.
    {"tree", 't', A::kRequired, S::kImplemented, false, "PID",
     "dump: the root of the process tree to checkpoint"},
    {"leave-running", 'R', A::kNone, S::kImplemented, false, nullptr,
     "dump: let the tree run on afterwards"},
    {"leave-stopped", 's', A::kNone, S::kImplemented, false, nullptr,
     "dump/restore: leave the tree stopped"},
    {"restore-detached", 'd', A::kNone, S::kImplemented, true, nullptr,
     "restore: exit once the tree runs (else wait for the root and return its status); "
     "service: run in the background once the socket listens"},
    {"daemon", 0, A::kNone, S::kImplemented, true, nullptr,
     "the same as --restore-detached; page-server, service: run in the background once listening"},
    {"shell-job", 'j', A::kNone, S::kImplemented, true, nullptr,
     "the tree is a job of a terminal session: needed on dump and restore"},
    {"file-locks", 'l', A::kNone, S::kImplemented, true, nullptr,
     "dump and restore the tree's file locks (flock, POSIX, OFD)"},
    {"ext-unix-sk", 'x', A::kOptional, S::kImplemented, false, nullptr,
     "allow unix sockets connected to a peer outside the tree (an inode list is not "
     "supported yet)"},
    {"tcp-established", 0, A::kNone, S::kImplemented, true, nullptr,
     "dump/restore: checkpoint/restore established (and half-closed) TCP connections, with "
     "TCP_REPAIR, under the network lock"},
    {"tcp-close", 0, A::kNone, S::kImplemented, true, nullptr,
     "dump/restore: restore established TCP connections closed"},
    {"skip-in-flight", 0, A::kNone, S::kImplemented, true, nullptr,
     "dump: drop incoming TCP connections not accepted yet (else a listener holding some is "
     "refused)"},
    {"network-lock", 0, A::kRequired, S::kImplemented, false, "nftables|iptables|skip",
     "dump/restore: how the tree's TCP connections are locked while dumped and restored "
     "(default nftables: an nft table inet cryo-PID; iptables: chains cryo-PID; skip: none)"},
    {"ghost-limit", 0, A::kRequired, S::kImplemented, false, "SIZE",
     "dump: most disk space a deleted file may use to be saved whole (K, M, G suffixes; "
     "default 1M; a sparse file counts by its blocks)"},
    {"link-remap", 0, A::kNone, S::kImplemented, true, nullptr,
     "dump: a file whose open name was removed while another hard link keeps it is kept by a "
     "new link link_remap.ID in its directory (the restore removes it)"},
    {"timeout", 0, A::kRequired, S::kImplemented, false, "SECONDS",
     "dump: how long the tree may take to stop (default 10)"},
    {"prev-images-dir", 0, A::kRequired, S::kImplemented, false, "DIR",
     "pre-dump, dump: the images of the previous pre-dump of the chain (relative to -D, or "
     "absolute); pages not written since are marked as in the parent images, which restore "
     "reads through the link 'parent' (page-server: the link to make in -D, to where it "
     "received the previous dump's pages)"},
    {"auto-dedup", 0, A::kNone, S::kImplemented, true, nullptr,
     "pre-dump, dump: punch the pages this dump writes anew out of the parent images, as "
     "'cryo dedup' does (restore: not supported yet)"},
    {"track-mem", 0, A::kNone, S::kImplemented, true, nullptr,
     "pre-dump, dump: track memory changes for the next dump of the chain (userfaultfd "
     "write-protection; pre-dump always does)"},
    // cgroups.
    {"manage-cgroups", 0, A::kOptional, S::kImplemented, false, "MODE",
     "dump: record the tasks' cgroups (unless =ignore); restore: put the tasks back in them. "
     "MODE: none (they must exist; no property set), props (they must exist; properties "
     "set), soft (the default: missing ones made with their properties), full (missing ones "
     "made; every property set), strict (none may exist; all made), ignore (cgroups left "
     "alone)"},
    {"cgroup-root", 0, A::kRequired, S::kImplemented, false, "[CTL:]PATH",
     "dump: the dumped directories of hierarchy CTL (every one without CTL) start at PATH; "
     "restore: the tree's top cgroup of that hierarchy is made at PATH (repeatable)"},
    {"cgroup-props", 0, A::kRequired, S::kImplemented, false, "SPEC",
     "dump: properties to save per controller, added to (\"strategy\": \"merge\") or "
     "replacing (\"replace\") the built-in list: \"CTL\":\\n - \"strategy\": \"merge\"\\n - "
     "\"properties\": [\"a\", \"b\"]"},
    {"cgroup-props-file", 0, A::kRequired, S::kImplemented, false, "FILE",
     "dump: the same as --cgroup-props, read from FILE"},
    {"cgroup-dump-controller", 0, A::kRequired, S::kImplemented, false, "NAME",
     "dump: record only the hierarchies of these controllers (repeatable)"},
    {"freeze-cgroup", 0, A::kRequired, S::kImplemented, false, "PATH",
     "dump: freeze the tree with its freezer cgroup PATH (v1 freezer.state or v2 "
     "cgroup.freeze) while it is seized; thawed after, also on failure"},
    // The page server.
    {"page-server", 0, A::kNone, S::kImplemented, true, nullptr,
     "pre-dump, dump: send the pages to a page server (--address, --port) instead of writing "
     "pagemap-*.img and pages-*.img"},
    {"address", 0, A::kRequired, S::kImplemented, false, "ADDR",
     "page server's address (dump), or the address it listens on (page-server; default: all); "
     "service: path of the unix socket to listen on (default ./criu_service.socket)"},
    {"port", 0, A::kRequired, S::kImplemented, false, "PORT",
     "page server's TCP port (page-server: 0 picks a free one, named in the log)"},
    {"lazy-pages", 0, A::kNone, S::kImplemented, false, nullptr,
     "restore: leave private anonymous memory to the lazy-pages daemon (post-copy); dump: "
     "keep it in the frozen tree and serve it on --port to 'cryo lazy-pages --page-server'"},
    {"ps-socket", 0, A::kRequired, S::kImplemented, false, "FD",
     "dump and page-server: use the connected socket FD instead of --address and --port"},
    {"status-fd", 0, A::kRequired, S::kImplemented, false, "FD",
     "page-server: write one zero byte to FD once listening, then close it"},
    {"tls", 0, A::kNone, S::kImplemented, true, nullptr,
     "dump --page-server and page-server: TLS (GnuTLS, X.509 certificates at both ends)"},
    {"tls-cacert", 0, A::kRequired, S::kImplemented, false, "FILE",
     "CA certificate the peer's must chain to (default /etc/pki/CA/cacert.pem and the "
     "system's CAs)"},
    {"tls-cacrl", 0, A::kRequired, S::kImplemented, false, "FILE",
     "certificate revocation list (default /etc/pki/CA/cacrl.pem, if readable)"},
    {"tls-cert", 0, A::kRequired, S::kImplemented, false, "FILE",
     "own certificate (default /etc/pki/criu/cert.pem)"},
    {"tls-key", 0, A::kRequired, S::kImplemented, false, "FILE",
     "own private key (default /etc/pki/criu/private/key.pem)"},
    {"tls-no-cn-verify", 0, A::kNone, S::kImplemented, false, nullptr,
     "do not check that the peer's certificate names its --address"},
    // Check.
    {"feature", 0, A::kRequired, S::kImplemented, false, "NAME",
     "check: only check feature NAME (repeatable; see cryo check --all)"},
    {"extra", 0, A::kNone, S::kImplemented, true, nullptr,
     "check: also check the features some trees need"},
    {"experimental", 0, A::kNone, S::kImplemented, true, nullptr,
     "check: also check experimental features"},
    {"all", 0, A::kNone, S::kImplemented, false, nullptr,
     "check: every feature, one line each (--extra and --experimental)"},
    // Accepted: they cannot change what cryo does.
    {"pre-dump-mode", 0, A::kRequired, S::kIgnored, false, "splice|read",
     "how pre-dump reads memory; the value is checked (cryo reads with process_vm_readv, or "
     "/proc/PID/mem for pages shared copy-on-write)"},
    {"ghost-fiemap", 0, A::kNone, S::kIgnored, true, nullptr,
     "a faster way to find holes in big deleted files; the images hold the same data"},
    {"weak-sysctls", 0, A::kNone, S::kIgnored, true, nullptr,
     "skip sysctls the kernel lacks: cryo restores no namespace sysctls"},
    {"skip-file-rwx-check", 0, A::kNone, S::kIgnored, true, nullptr,
     "cryo checks a file's type and size on restore, never its permission bits"},
    {"log-pid", 0, A::kNone, S::kIgnored, true, nullptr,
     "per-process log files: cryo writes one log"},
    {"deprecated", 0, A::kNone, S::kIgnored, true, nullptr,
     "allow deprecated features: cryo has none"},
    {"close", 0, A::kRequired, S::kIgnored, false, "FD",
     "close FD first: the restored tree never inherits cryo's descriptors"},
    {"file-validation", 0, A::kRequired, S::kIgnored, false, "METHOD",
     "only 'filesize' is accepted: cryo checks files by size ('buildid' is not supported "
     "yet)"},
    {"ext-mount-map", 'M', A::kRequired, S::kImplemented, false, "KEY:VAL",
     "the old form of --external mnt[]: dump: MOUNTPOINT:KEY, restore: KEY:PATH (repeatable)"},
    {"skip-mnt", 0, A::kRequired, S::kImplemented, false, "PATH",
     "dump: leave the mount at PATH (and what is mounted below it) out of the tree's mount "
     "namespace (repeatable)"},
    {"enable-fs", 0, A::kRequired, S::kImplemented, false, "FSNAMES",
     "dump: file systems (comma-separated, or 'all') mounted anew by name and options at "
     "restore, their content not saved (repeatable)"},
    {"enable-external-sharing", 0, A::kNone, S::kIgnored, false, nullptr,
     "cryo takes a mount whose master peer group is outside the tree only when it is bound "
     "from a host directory in that group"},
    {"enable-external-masters", 0, A::kNone, S::kIgnored, false, nullptr,
     "cryo takes a mount whose master peer group is outside the tree only when it is bound "
     "from a host directory in that group"},
    {"evasive-devices", 0, A::kNone, S::kIgnored, true, nullptr,
     "use any path to a device file: cryo opens a device by its dumped path"},
    {"mntns-compat-mode", 0, A::kNone, S::kIgnored, true, nullptr,
     "mount engine choice: cryo has one (bind mounts for peer groups)"},
    {"lsm-mount-context", 0, A::kRequired, S::kIgnored, false, "CTX",
     "mount context of restored mounts: the machine has no LSM that uses one"},
    // Refused: cryo cannot do these yet.
    {"restore-sibling", 'S', A::kNone, S::kImplemented, true, nullptr,
     "restore: the root task becomes a child of cryo's parent (needs -d)"},
    {"root", 'r', A::kRequired, S::kImplemented, false, "PATH",
     "restore: bind-mount PATH as the root of the tree's own mount namespace"},
    {"join-ns", 'J', A::kRequired, S::kRefused, false, "NS:{PID|FILE}",
     "restore into an existing namespace"},
    {"libdir", 'L', A::kRequired, S::kRefused, false, "DIR", "plugin directory"},
    {"veth-pair", 0, A::kRequired, S::kRefused, false, "IN=OUT", "veth devices' names"},
    {"action-script", 0, A::kRequired, S::kImplemented, false, "FILE",
     "run FILE with sh -c at each of CRIU's action points (pre-dump, post-dump, pre-restore, "
     "setup-namespaces, post-setup-namespaces, post-restore, pre-resume, post-resume), with "
     "CRTOOLS_SCRIPT_ACTION, CRTOOLS_IMAGE_DIR and CRTOOLS_INIT_PID set; a non-zero exit aborts "
     "(repeatable)"},
    {"cpu-cap", 0, A::kOptional, S::kRefused, false, "CAP", "CPU capabilities to check"},
    {"force-irmap", 0, A::kNone, S::kRefused, true, nullptr,
     "resolve fsnotify watches by scanning"},
    {"irmap-scan-path", 0, A::kRequired, S::kRefused, false, "PATH",
     "where to scan for fsnotify watches (repeatable)"},
    {"exec-cmd", 0, A::kNone, S::kRefused, false, nullptr, "run a command after restore"},
    {"cgroup-yard", 0, A::kRequired, S::kRefused, false, "PATH",
     "cgroup yard (cryo uses the hierarchies mounted in its mount namespace)"},
    {"inherit-fd", 0, A::kRequired, S::kImplemented, false, "fd[NUM]:RES",
     "restore: the tree's end of pipe RES (pipe:[INODE], as dumped) is cryo's fd NUM, as runc "
     "passes a container's stdio (repeatable)"},
    {"external", 0, A::kRequired, S::kImplemented, false, "RES",
     "an external resource (repeatable); only mounts yet: dump: mnt[MOUNTPOINT]:KEY saves the "
     "mount by KEY only, restore: mnt[KEY]:PATH bind-mounts PATH in its place"},
    {"empty-ns", 0, A::kRequired, S::kRefused, false, "net", "create an empty namespace"},
    {"lsm-profile", 0, A::kRequired, S::kRefused, false, "TYPE:NAME",
     "LSM profile of restored tasks"},
    {"stream", 0, A::kNone, S::kRefused, true, nullptr, "images through criu-image-streamer"},
    {"unprivileged", 0, A::kNone, S::kRefused, true, nullptr, "run as a non-root user"},
    {"allow-uprobes", 0, A::kNone, S::kRefused, true, nullptr, "dump uprobes areas"},
    {"ms", 0, A::kNone, S::kRemoved, false, nullptr, "removed in CRIU: use check --extra or --all"},
    {"help-man", 0, A::kNone, S::kHidden, false, nullptr, "print cryo(8)"},
};

const OptionSpec* find_letter(int c) {
  for (const auto& s : kTable)
    if (s.letter && s.letter == c) return &s;
  return nullptr;
}

std::string spelling(const OptionSpec& s) {
  std::string r;
  if (s.letter) r = std::string("-") + s.letter + "/";
  return r + "--" + s.name;
}

// CRIU's atoi: leading blanks, a sign and digits; anything else ends the number (0 if none).
int atoi_like(const char* s) {
  return static_cast<int>(std::strtol(s, nullptr, 10));
}

uint64_t parse_size(const char* s) {
  // A size with an optional K, M or G suffix, as CRIU takes it.
  char* end;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  int shift = 0;
  if (*end == 'K' || *end == 'k') shift = 10;
  if (*end == 'M' || *end == 'm') shift = 20;
  if (*end == 'G' || *end == 'g') shift = 30;
  if (shift) end++;
  if (end == s || *end || s[0] == '-' || errno || (shift && v > (~0ULL >> shift)))
    fail("bad size '{}' for --ghost-limit: give bytes, or a number with K, M or G", s);
  return static_cast<uint64_t>(v) << shift;
}

// One source of options: a config file's words or the command line.
struct Source {
  std::string where;  // "" for the command line, else "config FILE"
  std::vector<std::string> words;
};

struct Parser {
  Options* o;
  bool handled = false;  // help, version or man page printed

  std::string from(const Source& src) const {
    return src.where.empty() ? "" : fmt::format(" (in {})", src.where);
  }

  [[noreturn]] void refuse(const OptionSpec& s, bool negated, const Source& src) const {
    if (s.status == S::kRemoved)
      fail("option --{}{} was removed from CRIU: {}", s.name, from(src), s.help);
    fail("option {}{}{} is not supported by cryo yet: remove it", negated ? "--no-" : "",
         negated ? s.name : spelling(s).c_str(), from(src));
  }

  // [CTL:]/PATH, PATH a plain absolute path below the hierarchy's root.
  std::pair<std::string, std::string> parse_cgroup_root(const char* arg, const Source& src) const {
    std::string a = arg, ctl, path = a;
    size_t colon = a.find(':');
    if (colon != std::string::npos && a[0] != '/') {
      ctl = a.substr(0, colon);
      path = a.substr(colon + 1);
    }
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    bool bad = path.size() < 2 || path[0] != '/' || path.find("//") != std::string::npos;
    for (const char* dots : {"/./", "/../"})
      if ((path + "/").find(dots) != std::string::npos) bad = true;
    if (bad)
      fail(
          "bad cgroup root '{}' for --cgroup-root{}: give [CONTROLLER:]/PATH, an absolute path "
          "below the hierarchy's root, without . or ..",
          arg, from(src));
    return {ctl, path};
  }

  void apply(const OptionSpec& s, bool negated, const char* arg, const Source& src) {
    const std::string name = s.name;
    if (negated) {
      // --no-NAME: CRIU's default for every such option is off, which is what cryo does
      // without it; for cryo's own flags it turns them off.
      if (name == "restore-detached" || name == "daemon") o->restore_detached = false;
      if (name == "restore-sibling") o->restore_sibling = false;
      if (name == "shell-job") o->shell_job = false;
      if (name == "file-locks") o->file_locks = false;
      if (name == "link-remap") o->link_remap = false;
      if (name == "tcp-established") o->tcp_established = false;
      if (name == "tcp-close") o->tcp_close = false;
      if (name == "skip-in-flight") o->skip_in_flight = false;
      if (name == "display-stats") o->display_stats = false;
      if (name == "track-mem") o->track_mem = false;
      if (name == "auto-dedup") o->auto_dedup = false;
      if (name == "page-server") o->page_server = false;
      if (name == "tls") o->tls = false;
      if (name == "extra") o->check_extra = false;
      if (name == "experimental") o->check_experimental = false;
      return;
    }
    if (name == "manage-cgroups") {
      bool known = !arg;
      for (const char* m : {"none", "props", "soft", "full", "strict", "ignore"})
        if (arg && std::strcmp(arg, m) == 0) known = true;
      if (!known)
        fail(
            "bad mode '{}' for --manage-cgroups{}: use none, props, soft, full, strict or "
            "ignore",
            arg, from(src));
      o->manage_cgroups = arg ? arg : "soft";
      return;
    }
    if (name == "cgroup-root") return o->cgroup_roots.push_back(parse_cgroup_root(arg, src));
    if (name == "cgroup-props") {
      o->cgroup_props = arg;
      return;
    }
    if (name == "cgroup-props-file") {
      o->cgroup_props_file = arg;
      return;
    }
    if (name == "cgroup-dump-controller") return o->cgroup_dump_controllers.push_back(arg);
    if (name == "freeze-cgroup") {
      if (arg[0] != '/')
        fail("--freeze-cgroup {}{}: give the absolute path of the freezer cgroup", arg, from(src));
      o->freeze_cgroup = arg;
      return;
    }
    if (name == "file-validation") {
      if (std::strcmp(arg, "filesize") == 0) return;
      if (std::strcmp(arg, "buildid") == 0)
        fail("--file-validation buildid{} is not supported by cryo yet: use filesize", from(src));
      fail("bad method '{}' for --file-validation{}: use filesize or buildid", arg, from(src));
    }
    if (s.status == S::kRefused || s.status == S::kRemoved) refuse(s, false, src);
    if (name == "pre-dump-mode") {
      if (std::strcmp(arg, "splice") && std::strcmp(arg, "read"))
        fail("bad mode '{}' for --pre-dump-mode{}: use splice or read", arg, from(src));
    } else if (name == "network-lock") {
      if (std::strcmp(arg, "iptables") && std::strcmp(arg, "nftables") && std::strcmp(arg, "skip"))
        fail("bad method '{}' for --network-lock{}: use iptables, nftables or skip", arg,
             from(src));
      o->network_lock = arg;
    } else if (name == "tcp-established") {
      o->tcp_established = true;
    } else if (name == "tcp-close") {
      o->tcp_close = true;
    } else if (name == "skip-in-flight") {
      o->skip_in_flight = true;
    } else if (name == "close") {
      char* end;
      long fd = std::strtol(arg, &end, 10);
      if (end == arg || *end || fd < 0 || fd > INT_MAX)
        fail("bad descriptor '{}' for --close{}: give a file descriptor number", arg, from(src));
    } else if (name == "tree") {
      char* end;
      long v = std::strtol(arg, &end, 10);
      if (*end || end == arg || v <= 0 || v > 0x7fffffff)
        fail("bad PID '{}' for -t/--tree{}: give a positive process ID", arg, from(src));
      o->tree = static_cast<pid_t>(v);
    } else if (name == "images-dir") {
      o->images_dir = arg;
    } else if (name == "work-dir") {
      o->work_dir = arg;
    } else if (name == "log-file") {
      o->log_file = arg;
    } else if (name == "verbosity") {
      // As CRIU: -v and --verbosity add one; -vvv adds three; otherwise the leading number
      // of the argument, 0 if it has none (so -verbosity=0, read as -v "erbosity=0", is 0).
      if (!arg)
        o->verbosity++;
      else if (arg[0] == 'v')
        o->verbosity += static_cast<int>(std::strlen(arg)) + 1;
      else
        o->verbosity = atoi_like(arg);
    } else if (name == "prev-images-dir") {
      o->prev_images_dir = arg;
    } else if (name == "track-mem") {
      o->track_mem = true;
    } else if (name == "auto-dedup") {
      o->auto_dedup = true;
    } else if (name == "leave-running") {
      o->leave_running = true;
    } else if (name == "leave-stopped") {
      o->leave_stopped = true;
    } else if (name == "shell-job") {
      o->shell_job = true;
    } else if (name == "restore-detached" || name == "daemon") {
      o->restore_detached = true;
    } else if (name == "restore-sibling") {
      o->restore_sibling = true;
    } else if (name == "file-locks") {
      o->file_locks = true;
    } else if (name == "ext-unix-sk") {
      if (arg)
        fail(
            "-x/--ext-unix-sk={}{}: a list of socket inodes is not supported by cryo yet: "
            "give --ext-unix-sk without a value",
            arg, from(src));
      o->ext_unix_sk = true;
    } else if (name == "timeout") {
      char* end;
      long v = std::strtol(arg, &end, 10);
      if (end == arg || *end || v <= 0 || v > 86400)
        fail("bad timeout '{}' for --timeout{}: give seconds, 1 to 86400", arg, from(src));
      o->timeout = static_cast<unsigned>(v);
    } else if (name == "ghost-limit") {
      o->ghost_limit = parse_size(arg);
    } else if (name == "link-remap") {
      o->link_remap = true;
    } else if (name == "root") {
      o->root = arg;
    } else if (name == "external") {
      o->external.push_back(arg);
    } else if (name == "inherit-fd") {
      o->inherit_fds.push_back(arg);
    } else if (name == "ext-mount-map") {
      o->ext_mount_map.push_back(arg);
    } else if (name == "skip-mnt") {
      o->skip_mnt.push_back(arg);
    } else if (name == "enable-fs") {
      o->enable_fs.push_back(arg);
    } else if (name == "pidfile") {
      o->pidfile = arg;
    } else if (name == "address") {
      o->address = arg;
    } else if (name == "action-script") {
      o->action_scripts.push_back(arg);
    } else if (name == "display-stats") {
      o->display_stats = true;
    } else if (name == "stats-json") {
      if (!*arg) fail("--stats-json{} needs a file name", from(src));
      o->stats_json = arg;
    } else if (name == "page-server") {
      o->page_server = true;
    } else if (name == "lazy-pages") {
      o->lazy_pages = true;
    } else if (name == "address") {
      if (!*arg) fail("--address{} needs an address", from(src));
      o->address = arg;
    } else if (name == "port") {
      o->port = pageserver::parse_port(arg, true);
    } else if (name == "ps-socket" || name == "status-fd") {
      char* end;
      errno = 0;
      long fd = std::strtol(arg, &end, 10);
      if (end == arg || *end || errno || fd < 0 || fd > INT_MAX)
        fail("bad descriptor '{}' for --{}{}: give a file descriptor number", arg, name, from(src));
      (name == "ps-socket" ? o->ps_socket : o->status_fd) = static_cast<int>(fd);
    } else if (name == "tls") {
      o->tls = true;
    } else if (name == "tls-no-cn-verify") {
      o->tls_no_cn_verify = true;
    } else if (name.starts_with("tls-")) {
      if (!*arg) fail("--{}{} needs a file name", name, from(src));
      (name == "tls-cacert"  ? o->tls_cacert
       : name == "tls-cacrl" ? o->tls_cacrl
       : name == "tls-cert"  ? o->tls_cert
                             : o->tls_key) = arg;
    } else if (name == "feature") {
      o->features.push_back(arg);
    } else if (name == "all") {
      o->check_all = true;
      o->check_extra = o->check_experimental = true;
    } else if (name == "extra") {
      o->check_extra = true;
    } else if (name == "experimental") {
      o->check_experimental = true;
    } else if (name == "help") {
      usage();
      handled = true;
    } else if (name == "version") {
      version();
      handled = true;
    } else if (name == "help-man") {
      man_page();
      handled = true;
    }
    // config, no-default-config: read before parsing (see parse()). kIgnored: nothing.
  }

  // Runs getopt over one source; returns the words that are not options.
  std::vector<std::string> run(const Source& src) {
    std::vector<option> longs;
    // val: index into kTable, plus 10000 for the --no- form.
    std::vector<std::unique_ptr<std::string>> names;
    for (size_t i = 0; i < std::size(kTable); i++) {
      const auto& s = kTable[i];
      int kind = s.arg == A::kNone       ? no_argument
                 : s.arg == A::kRequired ? required_argument
                                         : optional_argument;
      longs.push_back({s.name, kind, nullptr, static_cast<int>(1000 + i)});
      if (s.negatable) {
        names.push_back(std::make_unique<std::string>(std::string("no-") + s.name));
        longs.push_back({names.back()->c_str(), no_argument, nullptr, static_cast<int>(10000 + i)});
      }
    }
    longs.push_back({nullptr, 0, nullptr, 0});

    std::vector<std::string> words = src.words;
    words.insert(words.begin(), "cryo");
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    const int argc = static_cast<int>(words.size());

    opterr = 0;
    optind = 0;  // a full reset of getopt for each source
    std::string short_opts = std::string(":") + kShortOptions;
    for (;;) {
      int idx = -1;
      int c = getopt_long(argc, argv.data(), short_opts.c_str(), longs.data(), &idx);
      if (c == -1) break;
      if (c == ':') {
        const OptionSpec* s =
            optopt >= 1000 && optopt < 10000 ? &kTable[optopt - 1000] : find_letter(optopt);
        std::string what = s ? spelling(*s) : std::string(argv[optind - 1]);
        fail("option {}{} needs an argument", what, from(src));
      }
      if (c == '?') {
        if (optopt >= 1000)
          fail("option {}{} takes no value: give it alone", argv[optind - 1], from(src));
        if (optopt)
          fail("unknown option -{}{}: see 'cryo --help'", static_cast<char>(optopt), from(src));
        std::string word = argv[optind - 1];
        std::string name = word.substr(word.find_first_not_of('-'));
        name = name.substr(0, name.find('='));
        int matches = 0;
        for (const auto& o : longs)
          if (o.name && std::strncmp(o.name, name.c_str(), name.size()) == 0) matches++;
        fail("{} option {}{}: see 'cryo --help'", matches > 1 ? "ambiguous" : "unknown", word,
             from(src));
      }
      if (c >= 10000) {
        const OptionSpec& s = kTable[c - 10000];
        apply(s, true, nullptr, src);
      } else if (c >= 1000) {
        apply(kTable[c - 1000], false, optarg, src);
      } else {
        const OptionSpec* s = find_letter(c);
        if (!s) fail("unknown option -{}{}: see 'cryo --help'", static_cast<char>(c), from(src));
        apply(*s, false, optarg, src);
      }
      if (handled) return {};
    }
    // getopt_long permutes: what is left are the action and its arguments.
    std::vector<std::string> rest;
    for (int i = optind; i < argc; i++) rest.push_back(argv[i]);
    return rest;
  }
};

std::vector<std::string> read_config(const std::string& path, bool must_exist) {
  std::ifstream in(path);
  if (!in) {
    if (!must_exist && errno == ENOENT) return {};
    fail("cannot read config file {}: {}: fix the path", path, std::strerror(errno));
  }
  std::vector<std::string> words;
  std::string line;
  while (std::getline(in, line)) {
    auto w = config_line_words(line);
    words.insert(words.end(), w.begin(), w.end());
  }
  return words;
}

}  // namespace

std::span<const OptionSpec> option_table() {
  return kTable;
}

std::vector<std::string> config_line_words(const std::string& line) {
  std::vector<std::string> words;
  size_t i = 0;
  const size_t n = line.size();
  auto blank = [&](size_t k) { return line[k] == ' ' || line[k] == '\t' || line[k] == '\r'; };
  while (i < n) {
    while (i < n && blank(i)) i++;
    if (i >= n || line[i] == '\n') break;
    if (line[i] == '#') break;  // a comment to the end of the line
    std::string w;
    if (line[i] == '"' && line.find('"', i + 1) != std::string::npos) {
      // A quoted value: up to the next unescaped quote; \" stands for a quote.
      i++;
      while (i < n && line[i] != '"') {
        if (line[i] == '\\' && i + 1 < n && line[i + 1] == '"') {
          w += '"';
          i += 2;
          continue;
        }
        w += line[i++];
      }
      i++;  // the closing quote
    } else {
      while (i < n && !blank(i) && line[i] != '\n') w += line[i++];
    }
    if (words.empty()) w.insert(0, "--");
    words.push_back(std::move(w));
  }
  return words;
}

ConfigSources default_config_sources() {
  ConfigSources s;
  if (const char* home = std::getenv("HOME")) s.home = home;
  if (const char* env = std::getenv("CRIU_CONFIG_FILE")) {
    s.env_file = env;
    s.has_env_file = true;
  }
  return s;
}

bool parse(int argc, char** argv, Options* o) {
  return parse(argc, argv, o, default_config_sources());
}

bool parse(int argc, char** argv, Options* o, const ConfigSources& sources) {
  // First a look over the command line alone, as CRIU does: help wins over everything, and
  // --config/--no-default-config decide which files are read.
  bool no_default = false;
  std::string config_file;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage();
      return false;
    }
    if (a == "--help-man") {
      man_page();
      return false;
    }
    if (a == "--no-default-config") no_default = true;
    if (a == "--config") {
      if (i + 1 >= argc) fail("option --config needs an argument");
      config_file = argv[i + 1];
      no_default = true;
    } else if (a.starts_with("--config=")) {
      config_file = a.substr(9);
      no_default = true;
    }
  }

  std::vector<Source> sources_in_order;
  if (!no_default) {
    sources_in_order.push_back({"config " + sources.global, read_config(sources.global, false)});
    if (!sources.home.empty()) {
      std::string user = sources.home + "/.criu/default.conf";
      sources_in_order.push_back({"config " + user, read_config(user, false)});
    }
  }
  if (sources.has_env_file)
    sources_in_order.push_back({"config " + sources.env_file + " (CRIU_CONFIG_FILE)",
                                read_config(sources.env_file, true)});
  if (!config_file.empty())
    sources_in_order.push_back({"config " + config_file, read_config(config_file, true)});

  Parser p{o};
  for (const auto& src : sources_in_order) {
    auto rest = p.run(src);
    if (p.handled) return false;
    if (!rest.empty())
      fail(
          "unexpected word '{}' in {}: one option per line, an optional value written "
          "NAME=VALUE",
          rest.front(), src.where);
  }
  Source cmdline{"", {}};
  for (int i = 1; i < argc; i++) cmdline.words.push_back(argv[i]);
  auto rest = p.run(cmdline);
  if (p.handled) return false;
  if (rest.empty())
    fail("no action given: use one of check, dump, pre-dump, restore (see 'cryo --help')");
  o->action = rest.front();
  o->action_args.assign(rest.begin() + 1, rest.end());
  check_action(*o);
  return true;
}

void check_action(const Options& o) {
  const std::string& a = o.action;
  auto no_args = [&] {
    if (!o.action_args.empty())
      fail("unexpected argument '{}' after '{}': {} takes options only", o.action_args.front(), a,
           a);
  };
  if (a == "dump" || a == "pre-dump" || a == "restore" || a == "check" || a == "dedup" ||
      a == "page-server" || a == "lazy-pages")
    return no_args();
  if (a == "cpuinfo") {
    if (o.action_args.empty()) fail("cpuinfo needs a sub-command: cpuinfo dump or cpuinfo check");
    const std::string& sub = o.action_args.front();
    if (sub != "dump" && sub != "check")
      fail("unknown cpuinfo sub-command '{}': use cpuinfo dump or cpuinfo check", sub);
    if (o.action_args.size() > 1)
      fail("unexpected argument '{}' after 'cpuinfo {}'", o.action_args[1], sub);
    fail("'cpuinfo {}' is not supported by cryo yet", sub);
  }
  if (a == "exec")
    fail(
        "the 'exec' action was removed from CRIU (the Compel library replaced it) and cryo "
        "has none");
  if (a == "swrk") {
    if (o.action_args.size() != 1) fail("swrk takes one argument: cryo swrk FD");
    return;
  }
  if (a == "service") return no_args();
  for (const char* v : {"decode", "encode", "show"})
    if (a == v)
      fail(
          "the image tool's '{}' comes first, with its own options: cryo {} ... (see cryo {} "
          "--help)",
          a, a, a);
  fail("unknown command '{}': use dump, pre-dump, restore or check (see 'cryo --help')", a);
}

void version() {
  std::printf("Version: %s\n", kCriuVersion);
  std::printf("GitID: cryo-%s\n", CRYO_VERSION);
}

namespace {

std::string left_column(const OptionSpec& s) {
  std::string r = "  ";
  r += s.letter ? std::string("-") + s.letter + "|" : "   ";
  r += std::string("--") + s.name;
  if (s.metavar)
    r += s.arg == A::kOptional ? std::string("[=") + s.metavar + "]" : std::string(" ") + s.metavar;
  return r;
}

// Wraps words to lines of at most width columns, each after indent.
std::string wrap(const std::string& text, size_t first_col, size_t indent, size_t width) {
  std::string out, word;
  size_t col = first_col;
  auto flush = [&] {
    if (word.empty()) return;
    if (col > indent && col + 1 + word.size() > width) {
      out += '\n';
      out.append(indent, ' ');
      col = indent;
    } else if (col > indent || (col == indent && !out.empty() && out.back() != ' ')) {
      out += ' ';
      col++;
    }
    out += word;
    col += word.size();
    word.clear();
  };
  for (char ch : text) {
    if (ch == ' ')
      flush();
    else
      word += ch;
  }
  flush();
  return out;
}

void print_group(const char* title, Status status) {
  std::printf("\n%s\n", title);
  for (const auto& s : kTable) {
    if (s.status != status) continue;
    std::string left = left_column(s);
    constexpr size_t kCol = 34;
    if (left.size() + 1 >= kCol)
      std::printf("%s\n%s", left.c_str(), std::string(kCol, ' ').c_str());
    else
      std::printf("%-*s", static_cast<int>(kCol), left.c_str());
    std::printf("%s\n", wrap(s.help, kCol, kCol, 100).c_str());
  }
}

}  // namespace

void usage() {
  std::printf(
      "Usage:\n"
      "  cryo dump -t PID [-D DIR] [<options>]\n"
      "  cryo pre-dump -t PID -D DIR [--prev-images-dir PREV] [<options>]\n"
      "  cryo dedup -D DIR\n"
      "  cryo restore [-D DIR] [<options>]\n"
      "  cryo check [--feature NAME | --extra | --experimental | --all]\n"
      "  cryo page-server -D DIR --port PORT [--address ADDR] [-d] [--status-fd FD]\n"
      "  cryo lazy-pages -D DIR [-W DIR] [--page-server --address ADDR --port PORT]\n"
      "  cryo service [--address PATH] [-d] [--pidfile FILE]\n"
      "  cryo swrk FD\n"
      "\n"
      "cryo takes CRIU %s's command line and RPC. Not supported yet: cpuinfo dump|check.\n"
      "Options come from /etc/criu/default.conf, ~/.criu/default.conf, $CRIU_CONFIG_FILE,\n"
      "--config FILE, then the command line. Flags can be negated: --no-shell-job.\n",
      kCriuVersion);
  print_group("Options:", S::kImplemented);
  print_group("Accepted, without effect on what cryo does:", S::kIgnored);
  std::string refused;
  for (const auto& s : kTable)
    if (s.status == S::kRefused || s.status == S::kRemoved)
      refused += (refused.empty() ? "" : ", ") + spelling(s);
  std::printf("\nRefused by name (not supported yet):\n  %s\n", wrap(refused, 2, 2, 100).c_str());
}

namespace {

// troff: a backslash and a leading dot or quote must be escaped.
std::string roff(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '\\')
      r += "\\e";
    else if (c == '-')
      r += "\\-";
    else
      r += c;
  }
  if (!r.empty() && (r[0] == '.' || r[0] == '\'')) r.insert(0, "\\&");
  return r;
}

void man_group(const char* title, Status status) {
  std::printf(".SS %s\n", title);
  for (const auto& s : kTable) {
    if (s.status != status && !(status == S::kRefused && s.status == S::kRemoved)) continue;
    std::string head;
    if (s.letter) head += std::string("\\fB\\-") + s.letter + "\\fR, ";
    head += "\\fB\\-\\-" + roff(s.name) + "\\fR";
    if (s.metavar)
      head += s.arg == A::kOptional ? "[=\\fI" + roff(s.metavar) + "\\fR]"
                                    : " \\fI" + roff(s.metavar) + "\\fR";
    std::string text = roff(s.help);
    if (s.negatable) text += " (\\fB\\-\\-no\\-" + roff(s.name) + "\\fR is taken too.)";
    std::printf(".TP\n%s\n%s\n", head.c_str(), text.c_str());
  }
}

}  // namespace

void man_page() {
  std::printf(
      ".TH CRYO 8 \"\" \"cryo %s\" \"System Administration\"\n"
      ".SH NAME\n"
      "cryo \\- checkpoint and restore Linux process trees (a drop\\-in for criu)\n"
      ".SH SYNOPSIS\n"
      "\\fBcryo\\fR \\fIcommand\\fR [\\fIoptions\\fR]\n"
      ".SH DESCRIPTION\n"
      "\\fBcryo\\fR saves a running process tree to a directory of image files and restores "
      "it later, on the same or another machine. It takes the command line of CRIU %s and "
      "writes CRIU's image format, so it can be installed as \\fBcriu\\fR.\n"
      ".SH COMMANDS\n"
      ".TP\n\\fBdump\\fR\ncheckpoint the tree rooted at \\fB\\-t\\fR \\fIPID\\fR\n"
      ".TP\n\\fBpre\\-dump\\fR\nwrite the memory of the tree rooted at \\fB\\-t\\fR "
      "\\fIPID\\fR and track its changes; the tree runs on. A later \\fBpre\\-dump\\fR or "
      "\\fBdump\\fR with \\fB\\-\\-prev\\-images\\-dir\\fR writes only the pages "
      "written since\n"
      ".TP\n\\fBdedup\\fR\npunch the pages the images directory holds anew out of its parent "
      "images (the \\fBparent\\fR link)\n"
      ".TP\n\\fBrestore\\fR\nrestore a tree from the images directory\n"
      ".TP\n\\fBcheck\\fR\ndoes this kernel offer what cryo needs? With \\fB\\-\\-feature\\fR "
      "\\fINAME\\fR: prints \\fINAME\\fR \\fBis supported\\fR and exits 0 when both the "
      "kernel and cryo support it, else exits 1 saying which one lacks it\n"
      ".TP\n\\fBpage\\-server\\fR\nreceive the pages of a \\fBdump \\-\\-page\\-server\\fR over "
      "TCP "
      "(CRIU 4.2's protocol) and write them in \\fB\\-D\\fR \\fIDIR\\fR as the dump would\n"
      ".TP\n\\fBservice\\fR\nserve CRIU's RPC on the unix socket \\fB\\-\\-address\\fR "
      "\\fIPATH\\fR "
      "(\\fB\\-d\\fR: in the background), one worker process per connection\n"
      ".TP\n\\fBswrk\\fR \\fIFD\\fR\nserve CRIU's RPC on the inherited socket \\fIFD\\fR (as "
      "go\\-criu, runc and podman start criu)\n"
      ".TP\n\\fBlazy\\-pages\\fR\nthe daemon of a lazy restore (post\\-copy): takes the "
      "userfaultfds of \\fBrestore \\-\\-lazy\\-pages\\fR on \\fIWORKDIR\\fR/lazy\\-pages.socket, "
      "fills each page fault from the images in \\fB\\-D\\fR, or from the source "
      "(\\fBdump \\-\\-lazy\\-pages \\-\\-port\\fR) with \\fB\\-\\-page\\-server "
      "\\-\\-address\\fR \\fIADDR\\fR \\fB\\-\\-port\\fR \\fIPORT\\fR, pushes the other pages "
      "meanwhile and exits once every page is in. If the source or the daemon fails "
      "before, the restored tree is killed\n"
      ".TP\n\\fBcpuinfo dump\\fR|\\fBcheck\\fR\n"
      "CRIU's; refused by name: not supported yet\n"
      ".SH OPTIONS\n",
      CRYO_VERSION, kCriuVersion);
  man_group("Options", S::kImplemented);
  man_group("Accepted without effect on what cryo does", S::kIgnored);
  man_group("Refused (not supported yet)", S::kRefused);
  std::printf(
      ".SH NAMESPACES\n"
      "The tree may have pid namespaces of its own: its root the init (PID 1) of one, as in "
      "a container, and namespaces nested below; every task keeps its PID in each of them. "
      "Also UTS namespaces (host and domain names) and time namespaces. A task in a user, "
      "mount, network, IPC or cgroup namespace other than cryo's is refused at dump, naming "
      "the kind.\n"
      ".SH FILES\n"
      ".TP\n/etc/criu/default.conf, ~/.criu/default.conf\n"
      "read first unless \\fB\\-\\-config\\fR or \\fB\\-\\-no\\-default\\-config\\fR is given; "
      "then the file named by \\fBCRIU_CONFIG_FILE\\fR, then \\fB\\-\\-config\\fR \\fIFILE\\fR, "
      "then the command line: a later source overrides an earlier one. One option per line "
      "without the leading dashes, its value after a blank; \\fB#\\fR starts a comment; "
      "\"double quotes\" keep blanks in a value.\n"
      ".SH EXIT STATUS\n"
      "0 on success; 1 on an error, which is reported in one line naming its cause.\n"
      ".SH SEE ALSO\n"
      "\\fBcriu\\fR(8), \\fBcrit\\fR(1)\n");
}

}  // namespace cryo::cli
