// The command line, with CRIU's option names and meanings.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/hooks.h"

namespace cryo::cli {

struct Options {
  std::string action;
  pid_t tree = 0;
  std::string images_dir = ".";
  std::string work_dir;
  std::string log_file;
  int verbosity = 2;
  std::string pidfile;
  bool leave_running = false;
  bool leave_stopped = false;
  bool shell_job = false;
  bool file_locks = false;         // -l: dump and restore file locks
  bool ext_unix_sk = false;        // unix sockets with a peer outside the tree are allowed
  uint64_t ghost_limit = 1 << 20;  // largest deleted file saved whole (CRIU's default)
  bool link_remap = false;         // a deleted file is linked to a hidden name, not copied
  unsigned timeout = 10;           // seconds the tree has to stop (CRIU's default)
  bool tcp_established = false;    // connected TCP sockets are dumped and restored
  bool tcp_close = false;          // and restored closed
  bool skip_in_flight = false;     // connections not accepted yet are dropped
  std::string network_lock;        // --network-lock: nftables, iptables, skip; "" not given
  std::string prev_images_dir;     // --prev-images-dir: the chain's previous images
  bool track_mem = false;          // --track-mem
  bool auto_dedup = false;         // --auto-dedup
  bool restore_detached = false;
  bool restore_sibling = false;  // -S: the restored root is a child of cryo's parent
  bool display_stats = false;
  bool check_all = false;                   // check --all: --extra and --experimental
  bool check_extra = false;                 // check --extra
  bool check_experimental = false;          // check --experimental
  std::vector<std::string> features;        // check --feature NAME (repeatable)
  std::string stats_json;                   // --stats-json FILE
  std::vector<std::string> action_args;     // words after the action: "cpuinfo dump", "swrk FD"
  std::string address;                      // --address: the page server's, or to listen on
  std::vector<std::string> action_scripts;  // --action-script FILE (repeatable)
  const hooks::Hooks* hooks = nullptr;      // set by the RPC: the client's notify callbacks
  bool page_server = false;                 // dump: --page-server
  bool lazy_pages = false;                  // dump, restore: --lazy-pages
  int port = -1;                            // --port, -1 when not given
  int ps_socket = -1;                       // --ps-socket FD
  int status_fd = -1;                       // --status-fd FD
  bool tls = false;                         // --tls and its files (page server connection)
  std::string tls_cacert, tls_cacrl, tls_cert, tls_key;
  bool tls_no_cn_verify = false;
  std::string root;                        // --root: restore's root of a mount namespace
  std::vector<std::string> external;       // --external RES (repeatable)
  std::vector<std::string> inherit_fds;    // --inherit-fd fd[N]:RES (repeatable)
  std::vector<std::string> ext_mount_map;  // -M/--ext-mount-map KEY:VAL (repeatable)
  std::vector<std::string> skip_mnt;       // --skip-mnt PATH (repeatable)
  std::vector<std::string> enable_fs;      // --enable-fs FSNAMES (repeatable)
  // cgroups: --manage-cgroups MODE (default soft), --cgroup-root [CTL:]PATH (CTL "" for
  // every hierarchy), dump: --cgroup-props, --cgroup-props-file, --cgroup-dump-controller,
  // --freeze-cgroup.
  std::string manage_cgroups = "soft";
  std::vector<std::pair<std::string, std::string>> cgroup_roots;
  std::string cgroup_props, cgroup_props_file;
  std::vector<std::string> cgroup_dump_controllers;
  std::string freeze_cgroup;
};

// One row per option of CRIU 4.2 (and cryo's own): the parser, --help and the man page are
// all made from this table.
enum class Arg { kNone, kRequired, kOptional };
enum class Status {
  kImplemented,  // cryo does what CRIU does
  kIgnored,      // accepted: it cannot change what cryo does (see the help text for why)
  kRefused,      // refused by name: cryo cannot do it yet
  kRemoved,      // removed from CRIU itself
  kHidden,       // cryo's internal (the man page generator)
};
struct OptionSpec {
  const char* name;  // long name, without the dashes
  char letter;       // short option letter, or 0
  Arg arg;
  Status status;
  bool negatable;       // CRIU also takes --no-NAME
  const char* metavar;  // argument name in the help, or nullptr
  const char* help;
};
std::span<const OptionSpec> option_table();
// getopt's short option string: CRIU's letters, in CRIU's order.
extern const char kShortOptions[];

// Where configuration files come from. The defaults are CRIU's: /etc/criu/default.conf,
// then $HOME/.criu/default.conf (both skipped with --config or --no-default-config), then the
// file named by $CRIU_CONFIG_FILE, then --config FILE, then the command line itself; a later
// source overrides an earlier one. Tests give their own paths.
struct ConfigSources {
  std::string global = "/etc/criu/default.conf";
  std::string home;      // empty: no $HOME, the user's file is skipped
  std::string env_file;  // $CRIU_CONFIG_FILE
  bool has_env_file = false;
};
ConfigSources default_config_sources();

// Parses argv; throws Error with a clear message on a wrong or unsupported option.
// Returns false when the command was fully handled (help, version, man page).
bool parse(int argc, char** argv, Options* o);
bool parse(int argc, char** argv, Options* o, const ConfigSources& sources);
// Throws unless o.action is a command cryo runs (dump, restore, check) with no stray words.
// CRIU's other commands are refused by name.
void check_action(const Options& o);

// Splits one line of a configuration file into words as CRIU does: the first word gets "--"
// in front, '#' starts a comment, "double quotes" keep spaces (\" is a quote inside them).
std::vector<std::string> config_line_words(const std::string& line);

void usage();     // --help, to stdout
void man_page();  // cryo(8) in troff, to stdout (--help-man)
void version();   // --version, to stdout

// The CRIU release whose command line, image format and feature names cryo implements.
inline constexpr const char* kCriuVersion = "4.2";

}  // namespace cryo::cli
