// inotify/fanotify: the fdinfo parser on fixed samples, and (as root) a dump of one of our
// own inotify instances recreated by the restore code with the same wds, masks and paths.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "base/error.h"
#include "dump/fsnotify.h"
#include "proc/proc.h"
#include "restore/fsnotify.h"

namespace cryo {
namespace {

TEST(FsnotifyTest, RecordsOfInotifyLines) {
  const std::string text =
      "pos:\t0\nflags:\t02004000\nmnt_id:\t17\nino:\t1038\n"
      "inotify wd:a ino:a7434f sdev:fe00000 mask:2 ignored_mask:0 fhandle-bytes:8 "
      "fhandle-type:1 f_handle:4f43a700d759d56f\n"
      "inotify wd:1 ino:1 sdev:1b mask:100 ignored_mask:0\n";
  auto r = dump::fdinfo_records(text, "inotify");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].at("wd"), "a");
  EXPECT_EQ(r[0].at("f_handle"), "4f43a700d759d56f");
  EXPECT_EQ(r[0].at("fhandle-type"), "1");
  EXPECT_EQ(r[1].at("mask"), "100");
  EXPECT_EQ(r[1].count("fhandle-bytes"), 0u);
  EXPECT_TRUE(dump::fdinfo_records(text, "fanotify").empty());
}

TEST(FsnotifyTest, RecordsOfFanotifyLines) {
  const std::string text =
      "flags:\t02004002\n"
      "fanotify flags:3 event-flags:8000\n"
      "fanotify mnt_id:1e mflags:0 mask:8 ignored_mask:0\n"
      "fanotify ino:a7434f sdev:fe00000 mflags:40 mask:0 ignored_mask:20 fhandle-bytes:8 "
      "fhandle-type:1 f_handle:4f43a700d759d56f\n";
  auto r = dump::fdinfo_records(text, "fanotify");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].at("event-flags"), "8000");
  EXPECT_EQ(r[1].at("mnt_id"), "1e");
  EXPECT_EQ(r[2].at("ignored_mask"), "20");
}

class FsnotifyLive : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "open_by_handle_at needs CAP_DAC_READ_SEARCH";
    char tmpl[] = "/tmp/cryo-fsnotify-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  std::string dir_;
};

TEST_F(FsnotifyLive, DumpAndRecreateKeepsWds) {
  const std::string sub = dir_ + "/sub", file = dir_ + "/file";
  ASSERT_EQ(mkdir(sub.c_str(), 0755), 0);
  close(open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  Fd in(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  ASSERT_TRUE(in);
  ASSERT_EQ(inotify_add_watch(in.get(), sub.c_str(), IN_CREATE), 1);
  ASSERT_EQ(inotify_add_watch(in.get(), dir_.c_str(), IN_DELETE), 2);
  ASSERT_EQ(inotify_add_watch(in.get(), file.c_str(), IN_MODIFY | IN_ONESHOT), 3);
  ASSERT_EQ(inotify_rm_watch(in.get(), 2), 0);
  char drain[256];
  while (read(in.get(), drain, sizeof drain) > 0) {
  }

  file_entry e;
  FdSource self(getpid());
  dump::FdContext c(self, in.get());
  dump::dump_inotify(c, 7, &e);
  ASSERT_TRUE(e.has_ify());
  ASSERT_EQ(e.ify().wd_size(), 2);
  EXPECT_EQ(e.ify().wd(0).wd(), 1u);
  EXPECT_EQ(e.ify().wd(0).f_handle().path(), sub);
  EXPECT_EQ(e.ify().wd(1).wd(), 3u);
  EXPECT_EQ(e.ify().wd(1).f_handle().path(), file);
  EXPECT_EQ(e.ify().wd(1).mask(), static_cast<uint32_t>(IN_MODIFY | IN_ONESHOT));
  EXPECT_EQ(e.ify().wd(1).f_handle().handle_size(), 16);

  Fd again = restore::open_inotify(e.ify());
  auto was = dump::fdinfo_records(proc::read_file("/proc/self/fdinfo/" + std::to_string(in.get())),
                                  "inotify");
  auto now = dump::fdinfo_records(
      proc::read_file("/proc/self/fdinfo/" + std::to_string(again.get())), "inotify");
  EXPECT_EQ(was, now);
  EXPECT_EQ(fcntl(again.get(), F_GETFL) & O_NONBLOCK, O_NONBLOCK);
  EXPECT_EQ(read(again.get(), drain, sizeof drain), -1);  // no stray IN_IGNORED
}

TEST_F(FsnotifyLive, DeletedWatchedFileIsRefused) {
  const std::string file = dir_ + "/doomed";
  Fd in(inotify_init1(IN_CLOEXEC));
  Fd keep(open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  ASSERT_EQ(inotify_add_watch(in.get(), file.c_str(), IN_MODIFY), 1);
  ASSERT_EQ(unlink(file.c_str()), 0);
  file_entry e;
  FdSource self(getpid());
  dump::FdContext c(self, in.get());
  try {
    dump::dump_inotify(c, 1, &e);
    FAIL() << "dump of a watch on a deleted file did not fail";
  } catch (const Error& err) {
    std::string m = err.what();
    EXPECT_NE(m.find("wd 1"), std::string::npos) << m;
    EXPECT_NE(m.find("deleted"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace cryo
