// The command line follows CRIU's options; wrong ones are refused with a clear message.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "cli/options.h"

namespace cryo::cli {
namespace {

// No configuration file is read unless a test makes one.
ConfigSources no_files() {
  ConfigSources s;
  s.global = "/nonexistent/cryo-test/default.conf";
  return s;
}

Options parse_args(std::vector<std::string> args, const ConfigSources& src = no_files()) {
  args.insert(args.begin(), "cryo");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  Options o;
  parse(static_cast<int>(args.size()), argv.data(), &o, src);
  return o;
}

std::string error_of(std::vector<std::string> args, const ConfigSources& src = no_files()) {
  try {
    parse_args(std::move(args), src);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// A scratch directory for config files, removed at the end of the test.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char t[] = "/tmp/cryo-options-test-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    auto p = path / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p;
  }
};

TEST(Options, DumpLikeCriu) {
  Options o =
      parse_args({"dump", "-t", "123", "-D", "/tmp/x", "-o", "dump.log", "-v4", "-R", "-j"});
  EXPECT_EQ(o.action, "dump");
  EXPECT_EQ(o.tree, 123);
  EXPECT_EQ(o.images_dir, "/tmp/x");
  EXPECT_EQ(o.log_file, "dump.log");
  EXPECT_EQ(o.verbosity, 4);
  EXPECT_TRUE(o.leave_running);
  EXPECT_TRUE(o.shell_job);
}

TEST(Options, LongFormsAndOptionsBeforeAction) {
  Options o =
      parse_args({"--images-dir=/d", "restore", "--restore-detached", "--pidfile", "/p",
                  "--verbosity=3", "--leave-stopped", "--display-stats", "--no-default-config"});
  EXPECT_EQ(o.action, "restore");
  EXPECT_EQ(o.images_dir, "/d");
  EXPECT_TRUE(o.restore_detached);
  EXPECT_EQ(o.pidfile, "/p");
  EXPECT_EQ(o.verbosity, 3);
  EXPECT_TRUE(o.leave_stopped);
  EXPECT_TRUE(o.display_stats);
}

TEST(Options, RepeatedV) {
  EXPECT_EQ(parse_args({"check", "-vv"}).verbosity, 4);
  EXPECT_EQ(parse_args({"check", "-v"}).verbosity, 3);
  EXPECT_EQ(parse_args({"check", "-v0"}).verbosity, 0);
}

TEST(Options, CheckFeatures) {
  Options o = parse_args({"check", "--feature", "uffd", "--feature", "timens"});
  EXPECT_EQ(o.features, (std::vector<std::string>{"uffd", "timens"}));
  EXPECT_TRUE(parse_args({"check", "--all"}).check_all);
}

TEST(Options, FilesOptions) {
  Options o = parse_args({"dump", "-t", "1", "-l", "--ext-unix-sk", "--ghost-limit", "16M"});
  EXPECT_TRUE(o.file_locks);
  EXPECT_TRUE(o.ext_unix_sk);
  EXPECT_EQ(o.ghost_limit, 16u << 20);
  EXPECT_EQ(parse_args({"dump", "--ghost-limit=4096"}).ghost_limit, 4096u);
  EXPECT_EQ(parse_args({"dump", "--ghost-limit", "2K"}).ghost_limit, 2048u);
  EXPECT_EQ(parse_args({"dump"}).ghost_limit, 1u << 20);  // CRIU's default
  EXPECT_NE(error_of({"dump", "--ghost-limit", "lots"}).find("lots"), std::string::npos);
  EXPECT_NE(error_of({"dump", "--ghost-limit", "-1"}).find("-1"), std::string::npos);
  EXPECT_NE(error_of({"dump", "--ghost-limit", "5T"}).find("5T"), std::string::npos);
  EXPECT_EQ(parse_args({"dump"}).timeout, 10u);  // CRIU's default
  EXPECT_EQ(parse_args({"dump", "--timeout", "3"}).timeout, 3u);
  EXPECT_NE(error_of({"dump", "--timeout", "0"}).find("--timeout"), std::string::npos);
}

TEST(Options, Refusals) {
  EXPECT_NE(error_of({"dump", "--no-such-option"}).find("--no-such-option"), std::string::npos);
  EXPECT_NE(error_of({"dump", "-t", "abc"}).find("abc"), std::string::npos);
  EXPECT_NE(error_of({"dump", "-t", "-5"}).find("-5"), std::string::npos);
  EXPECT_NE(error_of({"dump", "--force-irmap"}).find("not supported"), std::string::npos);
  EXPECT_NE(error_of({"dump", "extra", "-t", "1"}).find("extra"), std::string::npos);
  EXPECT_NE(error_of({"-t", "1"}).find("no action"), std::string::npos);
  EXPECT_NE(error_of({"dump", "-t"}).find("needs an argument"), std::string::npos);
}

TEST(Options, VerbosityAsCriu) {
  EXPECT_EQ(parse_args({"check", "-vvv"}).verbosity, 5);
  EXPECT_EQ(parse_args({"check", "-v4"}).verbosity, 4);
  EXPECT_EQ(parse_args({"check", "--verbosity=1"}).verbosity, 1);
  EXPECT_EQ(parse_args({"check", "--verbosity"}).verbosity, 3);
  EXPECT_EQ(parse_args({"check", "-v4", "-v"}).verbosity, 5);
  // getopt reads -verbosity=0 as -v with "erbosity=0": CRIU takes its number, none is 0.
  EXPECT_EQ(parse_args({"check", "-verbosity=0"}).verbosity, 0);
  EXPECT_EQ(parse_args({"check", "-verbosity=4"}).verbosity, 0);
  EXPECT_EQ(parse_args({"check", "-v3x"}).verbosity, 3);
  // -v 4: the 4 is not -v's argument but a word of its own, as with CRIU.
  EXPECT_TRUE(has(error_of({"check", "-v", "4"}), "'4'"));
}

TEST(Options, ShortLettersAndNegations) {
  Options o = parse_args({"restore", "-d", "-j", "-l", "-s", "-x", "-W", "/w"});
  EXPECT_TRUE(o.restore_detached && o.shell_job && o.file_locks && o.leave_stopped &&
              o.ext_unix_sk);
  EXPECT_EQ(o.work_dir, "/w");
  o = parse_args({"restore", "-djl", "--no-restore-detached", "--no-shell-job", "--no-file-locks"});
  EXPECT_FALSE(o.restore_detached || o.shell_job || o.file_locks);
  EXPECT_TRUE(parse_args({"restore", "--daemon"}).restore_detached);
  EXPECT_FALSE(parse_args({"dump", "--display-stats", "--no-display-stats"}).display_stats);
  // --no-X of an option cryo cannot do yet is what cryo does anyway.
  EXPECT_EQ(error_of({"dump", "--no-tcp-established", "--no-link-remap", "--no-track-mem"}), "");
  EXPECT_TRUE(has(error_of({"dump", "--ext-unix-sk=123"}), "not supported"));
  EXPECT_TRUE(has(error_of({"dump", "-t", "1", "--shell-job=yes"}), "takes no value"));
}

TEST(Options, StatsJson) {
  EXPECT_EQ(parse_args({"dump", "--stats-json", "/tmp/s.json"}).stats_json, "/tmp/s.json");
  EXPECT_EQ(parse_args({"restore", "--stats-json=s.json"}).stats_json, "s.json");
  EXPECT_EQ(parse_args({"restore"}).stats_json, "");
}

// Every option of the table in each spelling: parsed, accepted or refused by name; never
// "unknown".
TEST(Options, EveryCriuSpelling) {
  int refused = 0, accepted = 0;
  for (const auto& s : option_table()) {
    if (s.status == Status::kHidden) continue;
    std::string name = s.name;
    if (name == "help" || name == "version" || name == "config") continue;
    std::vector<std::vector<std::string>> forms;
    const char* value = name == "pre-dump-mode"     ? "read"
                        : name == "network-lock"    ? "nftables"
                        : name == "file-validation" ? "filesize"
                        : name == "manage-cgroups"  ? "ignore"
                        : name == "cgroup-root"     ? "pids:/x"
                        : name == "freeze-cgroup"   ? "/x"
                        : name == "feature"         ? "timerfd"
                        : name == "empty-ns"        ? "net"
                        : name == "inherit-fd"      ? "fd[3]:k"
                        : name == "join-ns"         ? "net:1"
                        : name == "verbosity"       ? "3"
                                                    : "1";
    if (s.arg == Arg::kNone) {
      forms.push_back({"--" + name});
    } else if (s.arg == Arg::kRequired) {
      forms.push_back({"--" + name, value});
      forms.push_back({"--" + name + "=" + value});
    } else {
      forms.push_back({"--" + name + "=" + value});
    }
    if (s.letter) {
      std::string l = std::string("-") + s.letter;
      if (s.arg == Arg::kRequired) {
        forms.push_back({l, value});
        forms.push_back({l + value});
      } else if (s.arg == Arg::kOptional && name == "verbosity") {
        forms.push_back({l + value});
      } else {
        forms.push_back({l});
      }
    }
    if (s.negatable) forms.push_back({"--no-" + name});
    for (auto f : forms) {
      f.insert(f.begin(), "dump");
      std::string e = error_of(f);
      SCOPED_TRACE(f[1]);
      EXPECT_FALSE(has(e, "unknown")) << e;
      if (e.empty()) {
        accepted++;
        continue;
      }
      refused++;
      if (name == "ext-unix-sk") continue;  // with a value: an inode list, refused
      EXPECT_TRUE(has(e, "not supported") || has(e, "removed from CRIU")) << e;
      EXPECT_TRUE(has(e, "--" + name)) << e;
      EXPECT_NE(s.status, Status::kImplemented) << e;
      EXPECT_NE(s.status, Status::kIgnored) << e;
    }
  }
  EXPECT_GT(accepted, 40);
  EXPECT_GT(refused, 15);
}

TEST(Options, TcpConnections) {
  Options o = parse_args(
      {"dump", "-t", "1", "--tcp-established", "--skip-in-flight", "--network-lock", "iptables"});
  EXPECT_TRUE(o.tcp_established);
  EXPECT_TRUE(o.skip_in_flight);
  EXPECT_FALSE(o.tcp_close);
  EXPECT_EQ(o.network_lock, "iptables");
  o = parse_args({"restore", "--tcp-close", "--tcp-established", "--no-tcp-established"});
  EXPECT_TRUE(o.tcp_close);
  EXPECT_FALSE(o.tcp_established);
  EXPECT_EQ(o.network_lock, "");
}

TEST(Options, RepeatedOptions) {
  Options o = parse_args({"check", "--feature", "uffd", "--feature=timens", "--feature", "tun"});
  EXPECT_EQ(o.features.size(), 3u);
  EXPECT_EQ(error_of({"dump", "--skip-mnt", "/a", "--skip-mnt", "/b", "--enable-fs", "fuse",
                      "--enable-fs", "all"}),
            "");
  o = parse_args({"dump", "--action-script", "a.sh", "--action-script=b.sh"});
  EXPECT_EQ(o.action_scripts, (std::vector<std::string>{"a.sh", "b.sh"}));
  o = parse_args({"restore", "--root", "/r", "--external", "mnt[a]:/x", "--external=mnt[b]:/y",
                  "-M", "c:/z", "--skip-mnt", "/p"});
  EXPECT_EQ(o.root, "/r");
  EXPECT_EQ(o.external, (std::vector<std::string>{"mnt[a]:/x", "mnt[b]:/y"}));
  EXPECT_EQ(o.ext_mount_map, (std::vector<std::string>{"c:/z"}));
  EXPECT_EQ(o.skip_mnt, (std::vector<std::string>{"/p"}));
  o = parse_args({"restore", "--cgroup-root", "/a/b/", "--cgroup-root=pids:/c"});
  EXPECT_EQ(o.cgroup_roots,
            (std::vector<std::pair<std::string, std::string>>{{"", "/a/b"}, {"pids", "/c"}}));
  for (const char* bad : {"a", "pids:b", "/", "/a/../b", "/a//b", "pids:/./b"})
    EXPECT_TRUE(has(error_of({"restore", "--cgroup-root", bad}), "bad cgroup root")) << bad;
  for (const char* opt : {"--irmap-scan-path"}) {
    std::string e = error_of({"restore", opt, "x", opt, "y"});
    EXPECT_TRUE(has(e, opt) && has(e, "not supported")) << e;
  }
  o = parse_args({"restore", "--inherit-fd", "fd[3]:extRootNetNS", "--inherit-fd=fd[12]:k:2", "-J",
                  "net:/run/netns/a", "--join-ns=uts:42"});
  EXPECT_EQ(o.inherit_fds,
            (std::vector<std::pair<int, std::string>>{{3, "extRootNetNS"}, {12, "k:2"}}));
  EXPECT_EQ(o.join_ns, (std::vector<std::pair<std::string, std::string>>{{"net", "/run/netns/a"},
                                                                         {"uts", "42"}}));
  for (const char* bad : {"x", "fd[]:k", "fd[3]", "fd[3]:", "fd[-1]:k", "fd[3x]:k"})
    EXPECT_TRUE(has(error_of({"restore", "--inherit-fd", bad}), "give fd[NUM]:KEY")) << bad;
  EXPECT_TRUE(has(error_of({"restore", "-J", "ipc:1"}), "net and uts namespaces only"));
  EXPECT_TRUE(has(error_of({"restore", "-J", "net"}), "give NS:PID or NS:FILE"));
  EXPECT_TRUE(has(error_of({"restore", "-J", "user:1,0,0"}), "net and uts namespaces only"));
}

TEST(Options, CheckedValues) {
  EXPECT_EQ(error_of({"dump", "--pre-dump-mode", "splice"}), "");
  EXPECT_TRUE(has(error_of({"dump", "--pre-dump-mode", "fast"}), "splice or read"));
  EXPECT_TRUE(has(error_of({"dump", "--network-lock", "ebpf"}), "--network-lock"));
  EXPECT_EQ(error_of({"restore", "--manage-cgroups=none"}), "");
  EXPECT_EQ(parse_args({"restore", "--manage-cgroups"}).manage_cgroups, "soft");
  EXPECT_EQ(parse_args({"restore"}).manage_cgroups, "soft");
  EXPECT_EQ(parse_args({"restore", "--manage-cgroups=full"}).manage_cgroups, "full");
  EXPECT_TRUE(has(error_of({"dump", "--freeze-cgroup", "x"}), "absolute path"));
  EXPECT_TRUE(has(error_of({"restore", "--manage-cgroups=odd"}), "bad mode 'odd'"));
  EXPECT_TRUE(has(error_of({"restore", "--file-validation", "buildid"}), "not supported"));
  EXPECT_TRUE(has(error_of({"dump", "--close", "x"}), "--close"));
  EXPECT_TRUE(has(error_of({"dump", "--ms"}), "removed"));
}

TEST(Options, UnknownAndMissing) {
  EXPECT_TRUE(has(error_of({"dump", "-Z"}), "unknown option -Z"));
  EXPECT_TRUE(has(error_of({"dump", "--bogus=1"}), "--bogus"));
  EXPECT_TRUE(has(error_of({"dump", "--tree"}), "-t/--tree needs an argument"));
  EXPECT_TRUE(has(error_of({"dump", "-D"}), "-D/--images-dir needs an argument"));
  EXPECT_TRUE(has(error_of({"dump", "--timeout", "soon"}), "soon"));
}

TEST(Options, Verbs) {
  Options lz = parse_args(
      {"lazy-pages", "-D", "img", "--page-server", "--address", "10.0.0.1", "--port", "1234"});
  EXPECT_EQ(lz.action, "lazy-pages");
  EXPECT_TRUE(lz.page_server);
  EXPECT_EQ(lz.port, 1234);
  EXPECT_TRUE(parse_args({"restore", "--lazy-pages"}).lazy_pages);
  EXPECT_TRUE(has(error_of({"lazy-pages", "extra"}), "unexpected argument 'extra'"));
  EXPECT_EQ(error_of({"pre-dump", "-t", "1", "--prev-images-dir", "../1", "--track-mem"}), "");
  EXPECT_TRUE(has(error_of({"pre-dump", "extra"}), "unexpected argument 'extra'"));
  EXPECT_EQ(error_of({"dedup", "-D", "x"}), "");
  Options o = parse_args({"swrk", "3"});
  EXPECT_EQ(o.action_args, (std::vector<std::string>{"3"}));
  EXPECT_TRUE(has(error_of({"swrk"}), "cryo swrk FD"));
  EXPECT_TRUE(has(error_of({"swrk", "3", "4"}), "cryo swrk FD"));
  o = parse_args({"service", "--address", "/run/x.sock", "-d", "--pidfile", "/run/x.pid"});
  EXPECT_EQ(o.address, "/run/x.sock");
  EXPECT_TRUE(o.restore_detached);
  EXPECT_TRUE(has(error_of({"service", "extra"}), "unexpected argument 'extra'"));
  EXPECT_TRUE(has(error_of({"cpuinfo", "dump"}), "'cpuinfo dump' is not supported"));
  EXPECT_TRUE(has(error_of({"cpuinfo", "check"}), "'cpuinfo check' is not supported"));
  EXPECT_TRUE(has(error_of({"cpuinfo"}), "sub-command"));
  EXPECT_TRUE(has(error_of({"cpuinfo", "eat"}), "unknown cpuinfo sub-command 'eat'"));
  EXPECT_TRUE(has(error_of({"exec"}), "removed from CRIU"));
  EXPECT_TRUE(has(error_of({"frobnicate"}), "unknown command 'frobnicate'"));
  EXPECT_TRUE(has(error_of({"check", "extra"}), "unexpected argument 'extra'"));
}

TEST(Options, PageServer) {
  Options o = parse_args(
      {"page-server", "-D", "/tmp", "--port", "0", "--address", "::1", "-d", "--status-fd", "5"});
  EXPECT_EQ(o.action, "page-server");
  EXPECT_EQ(o.port, 0);
  EXPECT_EQ(o.address, "::1");
  EXPECT_TRUE(o.restore_detached);
  EXPECT_EQ(o.status_fd, 5);
  o = parse_args({"dump", "--page-server", "--address", "h", "--port", "27000", "--ps-socket=4",
                  "--tls", "--tls-cacert", "ca", "--tls-cert", "c", "--tls-key", "k",
                  "--tls-no-cn-verify"});
  EXPECT_TRUE(o.page_server);
  EXPECT_EQ(o.port, 27000);
  EXPECT_EQ(o.ps_socket, 4);
  EXPECT_TRUE(o.tls && o.tls_no_cn_verify);
  EXPECT_EQ(o.tls_cacert + o.tls_cert + o.tls_key, "cack");
  EXPECT_FALSE(parse_args({"dump", "--page-server", "--no-page-server"}).page_server);
  EXPECT_TRUE(has(error_of({"page-server", "--port", "65536"}), "bad port '65536'"));
  EXPECT_TRUE(has(error_of({"page-server", "--port", "-1"}), "bad port '-1'"));
  EXPECT_TRUE(has(error_of({"page-server", "--port", "8x"}), "bad port '8x'"));
  EXPECT_TRUE(has(error_of({"dump", "--ps-socket", "x"}), "bad descriptor 'x' for --ps-socket"));
  EXPECT_TRUE(has(error_of({"page-server", "--status-fd", "-2"}), "--status-fd"));
  EXPECT_TRUE(has(error_of({"page-server", "extra"}), "unexpected argument 'extra'"));
}

TEST(Options, ConfigFileSyntax) {
  EXPECT_EQ(config_line_words("tcp-established"), (std::vector<std::string>{"--tcp-established"}));
  EXPECT_EQ(config_line_words("  log-file  /tmp/x.log   # a comment"),
            (std::vector<std::string>{"--log-file", "/tmp/x.log"}));
  EXPECT_EQ(config_line_words("# only a comment"), (std::vector<std::string>{}));
  EXPECT_EQ(config_line_words(""), (std::vector<std::string>{}));
  EXPECT_EQ(config_line_words("images-dir \"/a dir/with spaces\""),
            (std::vector<std::string>{"--images-dir", "/a dir/with spaces"}));
  EXPECT_EQ(config_line_words("pidfile \"say \\\"hi\\\"\""),
            (std::vector<std::string>{"--pidfile", "say \"hi\""}));
  EXPECT_EQ(config_line_words("verbosity=4"), (std::vector<std::string>{"--verbosity=4"}));
}

TEST(Options, ConfigPrecedence) {
  TempDir d;
  ConfigSources src;
  src.global =
      d.write("etc/default.conf", "images-dir /global\nlog-file g.log\nshell-job\nverbosity\n");
  src.home = d.path / "home";
  d.write("home/.criu/default.conf", "# the user's\nimages-dir /user\nfile-locks\n");
  // Global, then the user's file: later wins, flags add up.
  Options o = parse_args({"dump"}, src);
  EXPECT_EQ(o.images_dir, "/user");
  EXPECT_EQ(o.log_file, "g.log");
  EXPECT_TRUE(o.shell_job && o.file_locks);
  EXPECT_EQ(o.verbosity, 3);
  // The command line wins over both.
  o = parse_args({"dump", "-D", "/cmd", "--no-shell-job"}, src);
  EXPECT_EQ(o.images_dir, "/cmd");
  EXPECT_FALSE(o.shell_job);
  // $CRIU_CONFIG_FILE comes after the default files.
  src.env_file = d.write("env.conf", "images-dir /env\n");
  src.has_env_file = true;
  EXPECT_EQ(parse_args({"dump"}, src).images_dir, "/env");
  // --config FILE comes after it, and skips the default files (not $CRIU_CONFIG_FILE).
  std::string cfg = d.write("cfg.conf", "leave-running\n");
  o = parse_args({"dump", "--config", cfg}, src);
  EXPECT_EQ(o.images_dir, "/env");
  EXPECT_TRUE(o.leave_running);
  EXPECT_EQ(o.log_file, "");
  EXPECT_FALSE(o.shell_job);
  d.write("cfg.conf", "images-dir /cfg\n");
  EXPECT_EQ(parse_args({"dump", "--config=" + cfg}, src).images_dir, "/cfg");
  // --no-default-config skips the default files only.
  src.has_env_file = false;
  o = parse_args({"dump", "--no-default-config"}, src);
  EXPECT_EQ(o.images_dir, ".");
  EXPECT_FALSE(o.shell_job);
  // A missing default file is no error; a missing --config file is.
  src.global = (d.path / "none.conf").string();
  EXPECT_EQ(error_of({"dump"}, src), "");
  EXPECT_TRUE(
      has(error_of({"dump", "--config", "/nonexistent/x.conf"}, src), "/nonexistent/x.conf"));
}

TEST(Options, ConfigFileErrorsNameTheFile) {
  TempDir d;
  ConfigSources src = no_files();
  std::string cfg = d.write("c.conf", "force-irmap\n");
  std::string e = error_of({"dump", "--config", cfg}, src);
  EXPECT_TRUE(has(e, "--force-irmap") && has(e, cfg) && has(e, "not supported")) << e;
  d.write("c.conf", "no-such-thing\n");
  e = error_of({"dump", "--config", cfg}, src);
  EXPECT_TRUE(has(e, "--no-such-thing") && has(e, cfg)) << e;
  d.write("c.conf", "shell-job yes\n");
  e = error_of({"dump", "--config", cfg}, src);
  EXPECT_TRUE(has(e, "unexpected word 'yes'")) << e;
}

}  // namespace
}  // namespace cryo::cli
