#include "cli/options.h"

#include <getopt.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

#include "base/error.h"

namespace cryo::cli {
namespace {

enum LongOnly {
  kPidfile = 1000,
  kDisplayStats,
  kNoDefaultConfig,
  kFeature,
  kAll,
  kExtUnixSk,
  kGhostLimit,
  kTimeout,
  kLinkRemap,
  kUnsupported,
};

// CRIU options that later steps will implement: refused clearly rather than ignored.
const char* const kLater[] = {
    "pre-dump",
    "page-server",
    "lazy-pages",
    "track-mem",
    "prev-images-dir",
    "auto-dedup",
    "tcp-established",
    "address",
    "port",
    "freeze-cgroup",
    "external",
    "manage-cgroups",
    "root",
    "inherit-fd",
    "status-fd",
    "tcp-close",
    "skip-mnt",
    "enable-fs",
    "action-script",
    "cpu-cap",
    "weak-sysctls",
    "network-lock",
    "irmap-scan-path",
    "evasive-devices",
    "force-irmap",
    "empty-ns",
    "join-ns",
    "veth-pair",
    "cgroup-root",
    "config",
    "stream",
    "mntns-compat-mode",
};

}  // namespace

void usage() {
  std::printf(
      "Usage:\n"
      "  cryo dump -t PID [-D DIR] [<options>]\n"
      "  cryo restore [-D DIR] [<options>]\n"
      "  cryo check [--feature NAME | --all]\n"
      "\n"
      "Options:\n"
      "  -t|--tree PID          checkpoint the process tree rooted at PID\n"
      "  -D|--images-dir DIR    directory for image files (default: .)\n"
      "  -W|--work-dir DIR      directory for logs (default: the images directory)\n"
      "  -o|--log-file FILE     log file, relative to the work directory\n"
      "  -v[NUM]|--verbosity[=NUM]  log level 0..4 (-v alone raises it by one)\n"
      "  -R|--leave-running     resume the tree after dump\n"
      "  -s|--leave-stopped     leave the tree stopped after dump or restore\n"
      "  -j|--shell-job         the tree is a job of a terminal session\n"
      "  -d|--restore-detached  do not wait for the restored root task\n"
      "  -l|--file-locks        dump and restore file locks\n"
      "  --ext-unix-sk          allow unix sockets connected to a peer outside the tree\n"
      "  --ghost-limit SIZE     largest deleted file saved in the images (default 1M)\n"
      "  --link-remap           keep a deleted file by a hidden link instead of a copy\n"
      "  --timeout SECONDS      how long the tree may take to stop (default 10)\n"
      "  --pidfile FILE         write the restored root's PID to FILE\n"
      "  --display-stats        print dump/restore statistics\n"
      "  --no-default-config    do not read configuration files\n"
      "  -V|--version           print the version\n"
      "  -h|--help              print this help\n");
}

bool parse(int argc, char** argv, Options* o) {
  std::vector<option> longs = {
      {"tree", required_argument, nullptr, 't'},
      {"images-dir", required_argument, nullptr, 'D'},
      {"work-dir", required_argument, nullptr, 'W'},
      {"log-file", required_argument, nullptr, 'o'},
      {"verbosity", optional_argument, nullptr, 'v'},
      {"leave-running", no_argument, nullptr, 'R'},
      {"leave-stopped", no_argument, nullptr, 's'},
      {"shell-job", no_argument, nullptr, 'j'},
      {"restore-detached", no_argument, nullptr, 'd'},
      {"file-locks", no_argument, nullptr, 'l'},
      {"ext-unix-sk", optional_argument, nullptr, kExtUnixSk},
      {"ghost-limit", required_argument, nullptr, kGhostLimit},
      {"link-remap", no_argument, nullptr, kLinkRemap},
      {"timeout", required_argument, nullptr, kTimeout},
      {"version", no_argument, nullptr, 'V'},
      {"help", no_argument, nullptr, 'h'},
      {"pidfile", required_argument, nullptr, kPidfile},
      {"display-stats", no_argument, nullptr, kDisplayStats},
      {"no-default-config", no_argument, nullptr, kNoDefaultConfig},
      {"feature", required_argument, nullptr, kFeature},
      {"all", no_argument, nullptr, kAll},
  };
  for (const char* name : kLater) longs.push_back({name, optional_argument, nullptr, kUnsupported});
  longs.push_back({nullptr, 0, nullptr, 0});

  opterr = 0;
  optind = 1;
  bool verbosity_set = false;
  for (;;) {
    int idx = -1;
    int c = getopt_long(argc, argv, ":t:D:W:o:v::RsjdlVh", longs.data(), &idx);
    if (c == -1) break;
    switch (c) {
      case 't': {
        char* end;
        long v = std::strtol(optarg, &end, 10);
        if (*end || v <= 0 || v > 0x7fffffff)
          fail("bad PID '{}' for -t/--tree: give a positive process ID", optarg);
        o->tree = static_cast<pid_t>(v);
        break;
      }
      case 'D':
        o->images_dir = optarg;
        break;
      case 'W':
        o->work_dir = optarg;
        break;
      case 'o':
        o->log_file = optarg;
        break;
      case 'v':
        if (optarg) {
          // -v4, -vvv, --verbosity=3
          if (std::strspn(optarg, "v") == std::strlen(optarg)) {
            o->verbosity =
                (verbosity_set ? o->verbosity : 2) + 1 + static_cast<int>(std::strlen(optarg));
          } else {
            char* end;
            long v = std::strtol(optarg, &end, 10);
            if (*end || v < 0) fail("bad verbosity '{}': use -v0 .. -v4", optarg);
            o->verbosity = static_cast<int>(v);
          }
        } else {
          o->verbosity = (verbosity_set ? o->verbosity : 2) + 1;
        }
        verbosity_set = true;
        break;
      case 'R':
        o->leave_running = true;
        break;
      case 's':
        o->leave_stopped = true;
        break;
      case 'j':
        o->shell_job = true;
        break;
      case 'd':
        o->restore_detached = true;
        break;
      case 'l':
        o->file_locks = true;
        break;
      case kExtUnixSk:
        o->ext_unix_sk = true;
        break;
      case kLinkRemap:
        o->link_remap = true;
        break;
      case kTimeout: {
        char* end;
        long v = std::strtol(optarg, &end, 10);
        if (end == optarg || *end || v <= 0 || v > 86400)
          fail("bad timeout '{}' for --timeout: give seconds, 1 to 86400", optarg);
        o->timeout = static_cast<unsigned>(v);
        break;
      }
      case kGhostLimit: {
        // A size with an optional K, M or G suffix, as CRIU takes it.
        char* end;
        unsigned long long v = std::strtoull(optarg, &end, 10);
        int shift = 0;
        if (*end == 'K' || *end == 'k') shift = 10;
        if (*end == 'M' || *end == 'm') shift = 20;
        if (*end == 'G' || *end == 'g') shift = 30;
        if (shift) end++;
        if (end == optarg || *end || optarg[0] == '-' || (shift && v > (~0ULL >> shift)))
          fail("bad size '{}' for --ghost-limit: give bytes, or a number with K, M or G", optarg);
        o->ghost_limit = static_cast<uint64_t>(v) << shift;
        break;
      }
      case 'V':
        std::printf("Version: %s (cryo)\n", CRYO_VERSION);
        return false;
      case 'h':
        usage();
        return false;
      case kPidfile:
        o->pidfile = optarg;
        break;
      case kDisplayStats:
        o->display_stats = true;
        break;
      case kNoDefaultConfig:
        break;  // cryo reads no configuration files
      case kFeature:
        o->features.push_back(optarg);
        break;
      case kAll:
        o->check_all = true;
        break;
      case kUnsupported:
        fail("option --{} is not supported by this version of cryo yet", longs[idx].name);
      case ':':
        fail("option {} needs an argument", argv[optind - 1]);
      default:
        if (optopt && optopt != '?')
          fail("unknown option -{}: see 'cryo --help'", static_cast<char>(optopt));
        fail("unknown option {}: see 'cryo --help'", argv[optind - 1]);
    }
  }
  // getopt_long permutes argv: options may come before or after the action, as with CRIU.
  if (optind >= argc) {
    usage();
    fail("no action given: use one of check, dump, restore");
  }
  o->action = argv[optind++];
  if (optind < argc) fail("unexpected argument '{}'", argv[optind]);
  return true;
}

}  // namespace cryo::cli
