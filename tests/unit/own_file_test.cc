// cryo's own output files and the images it trusts: no symlink followed, no file of someone
// else reused, no FIFO waited on.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "base/error.h"
#include "base/own_file.h"
#include "image/image.h"
#include "restore/trust.h"

namespace cryo {
namespace {

class OwnFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cryo-own-file-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  void put(const std::string& name, const std::string& data) {
    std::ofstream(path(name), std::ios::binary | std::ios::trunc) << data;
  }
  std::string get(const std::string& name) {
    std::ifstream f(path(name), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  mode_t mode(const std::string& name) {
    struct stat st;
    EXPECT_EQ(::lstat(path(name).c_str(), &st), 0);
    return st.st_mode;
  }
  // The message of the Error f() throws, or "" if it throws none.
  template <typename F>
  std::string error_of(F&& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  std::string dir_;
};

TEST_F(OwnFileTest, CreateNewIsPrivateAndRefusesWhatIsThere) {
  Fd fd = create_new_file(path("pid"), "pidfile");
  ASSERT_TRUE(fd);
  EXPECT_EQ(mode("pid") & 0777, 0600u);

  put("old", "12345");
  std::string msg = error_of([&] { create_new_file(path("old"), "pidfile"); });
  EXPECT_NE(msg.find("pidfile " + path("old") + " already exists"), std::string::npos) << msg;
  EXPECT_NE(msg.find("remove it"), std::string::npos) << msg;
  EXPECT_EQ(get("old"), "12345");

  put("target", "precious");
  ASSERT_EQ(::symlink(path("target").c_str(), path("link").c_str()), 0);
  ASSERT_EQ(::symlink(path("absent").c_str(), path("dangling").c_str()), 0);
  msg = error_of([&] { create_new_file(path("link"), "pidfile"); });
  EXPECT_NE(msg.find("symbolic link"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { create_new_file(path("dangling"), "pidfile"); }), "");
  EXPECT_EQ(get("target"), "precious");
  EXPECT_NE(::access(path("absent").c_str(), F_OK), 0);
}

TEST_F(OwnFileTest, RecreateRemovesALinkNotItsTarget) {
  put("target", "precious");
  ASSERT_EQ(::symlink(path("target").c_str(), path(".x.img.part").c_str()), 0);
  Fd fd = recreate_file(path(".x.img.part"), "image");
  ASSERT_TRUE(fd);
  ASSERT_EQ(::write(fd.get(), "new", 3), 3);
  EXPECT_TRUE(S_ISREG(mode(".x.img.part")));
  EXPECT_EQ(mode(".x.img.part") & 0777, 0600u);
  EXPECT_EQ(get("target"), "precious");
  EXPECT_EQ(get(".x.img.part"), "new");

  ASSERT_EQ(::mkdir(path("d.img").c_str(), 0700), 0);
  EXPECT_NE(error_of([&] { recreate_file(path("d.img"), "image"); }).find("directory"),
            std::string::npos);
}

TEST_F(OwnFileTest, OwnFileTruncatesOnlyARegularFileOfOurs) {
  put("log", "old line\n");
  ASSERT_EQ(::chmod(path("log").c_str(), 0644), 0);
  {
    Fd fd = open_own_file(path("log"), "log file");
    ASSERT_TRUE(fd);
  }
  EXPECT_EQ(get("log"), "");
  EXPECT_EQ(mode("log") & 0777, 0600u);
  { Fd fresh = open_own_file(path("fresh"), "log file"); }
  EXPECT_EQ(mode("fresh") & 0777, 0600u);

  put("target", "precious");
  ASSERT_EQ(::symlink(path("target").c_str(), path("link.log").c_str()), 0);
  EXPECT_NE(error_of([&] { open_own_file(path("link.log"), "log file"); }).find("symbolic link"),
            std::string::npos);
  EXPECT_EQ(get("target"), "precious");

  ASSERT_EQ(::mkfifo(path("fifo.log").c_str(), 0600), 0);
  EXPECT_NE(error_of([&] { open_own_file(path("fifo.log"), "log file"); }).find("FIFO"),
            std::string::npos);

  put("linked", "data");
  ASSERT_EQ(::link(path("linked").c_str(), path("linked.log").c_str()), 0);
  EXPECT_NE(error_of([&] { open_own_file(path("linked.log"), "log file"); }).find("hard links"),
            std::string::npos);
  EXPECT_EQ(get("linked"), "data");
}

TEST_F(OwnFileTest, ReaderRefusesAFifoAndALinkWithoutWaiting) {
  ASSERT_EQ(::mkfifo(path("core-1.img").c_str(), 0600), 0);
  std::string msg = error_of([&] { image::Reader r(dir_, "core-1.img", image::magic::kCore); });
  EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;

  put("real.img", "xxxxxxxx");
  ASSERT_EQ(::symlink(path("real.img").c_str(), path("mm-1.img").c_str()), 0);
  msg = error_of([&] { image::Reader r(dir_, "mm-1.img", image::magic::kMm); });
  EXPECT_NE(msg.find("symbolic link"), std::string::npos) << msg;
}

TEST_F(OwnFileTest, ImagesTrustedOnlyIfNobodyElseCanWriteThem) {
  put("core-1.img", "x");
  ASSERT_EQ(::chmod(path("core-1.img").c_str(), 0600), 0);
  ASSERT_EQ(::chmod(dir_.c_str(), 0700), 0);
  EXPECT_EQ(error_of([&] { restore::check_images_trusted(dir_); }), "");

  ASSERT_EQ(::chmod(dir_.c_str(), 0777), 0);
  std::string msg = error_of([&] { restore::check_images_trusted(dir_); });
  EXPECT_NE(msg.find("images directory " + dir_ + " is writable by others"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("0777"), std::string::npos) << msg;
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);

  ASSERT_EQ(::chmod(path("core-1.img").c_str(), 0620), 0);
  msg = error_of([&] { restore::check_images_trusted(dir_); });
  EXPECT_NE(msg.find("image " + path("core-1.img") + " is writable by its group"),
            std::string::npos)
      << msg;
  ASSERT_EQ(::chmod(path("core-1.img").c_str(), 0644), 0);

  // Files that are not images (a log, a stale temporary) are not the restore's business.
  put("restore.log", "");
  ASSERT_EQ(::chmod(path("restore.log").c_str(), 0666), 0);
  EXPECT_EQ(error_of([&] { restore::check_images_trusted(dir_); }), "");

  ASSERT_EQ(::symlink(path("core-1.img").c_str(), path("mm-1.img").c_str()), 0);
  msg = error_of([&] { restore::check_images_trusted(dir_); });
  EXPECT_NE(msg.find("image " + path("mm-1.img") + " is a symbolic link"), std::string::npos)
      << msg;
}

}  // namespace
}  // namespace cryo
