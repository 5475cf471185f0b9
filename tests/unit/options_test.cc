// The command line follows CRIU's options; wrong ones are refused with a clear message.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/error.h"
#include "cli/options.h"

namespace cryo::cli {
namespace {

Options parse_args(std::vector<std::string> args) {
  args.insert(args.begin(), "cryo");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  Options o;
  parse(static_cast<int>(args.size()), argv.data(), &o);
  return o;
}

std::string error_of(std::vector<std::string> args) {
  try {
    parse_args(std::move(args));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

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
  EXPECT_NE(error_of({"dump", "--tcp-established"}).find("not supported"), std::string::npos);
  EXPECT_NE(error_of({"dump", "extra", "-t", "1"}).find("extra"), std::string::npos);
  EXPECT_NE(error_of({"-t", "1"}).find("no action"), std::string::npos);
  EXPECT_NE(error_of({"dump", "-t"}).find("needs an argument"), std::string::npos);
}

}  // namespace
}  // namespace cryo::cli
