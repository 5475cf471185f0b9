// Files named in images are opened without blocking: a FIFO now where the dump saw a regular
// file is refused (naming the path) instead of hanging the restore, and saved pipe data that
// does not fit its pipe fails instead of blocking. An alarm turns a hang into a failure.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "base/error.h"
#include "restore/files.h"
#include "restore/pipes.h"

namespace cryo::restore {
namespace {

class OpenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cryo-open-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    alarm(20);  // a blocked open or write kills the test
  }
  void TearDown() override {
    alarm(0);
    std::system(("rm -rf " + dir_).c_str());
  }
  std::string refused(const std::string& path, uint32_t flags, uint32_t mode) {
    try {
      open_checked(path, flags, true, mode, "file 3");
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << path << " was opened";
    return "";
  }
  std::string dir_;
};

TEST_F(OpenTest, FifoWhereARegularFileWasIsRefused) {
  std::string path = dir_ + "/data";
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  for (uint32_t flags : {O_RDONLY, O_WRONLY, O_RDWR}) {
    std::string m = refused(path, flags, S_IFREG | 0644);
    EXPECT_NE(m.find("file 3"), std::string::npos) << m;
    EXPECT_NE(m.find(path + " is now a FIFO"), std::string::npos) << m;
    EXPECT_NE(m.find("it was a regular file"), std::string::npos) << m;
  }
}

TEST_F(OpenTest, KindMustMatchTheImage) {
  std::string m = refused(dir_, O_RDONLY, S_IFREG | 0644);
  EXPECT_NE(m.find("is now a directory"), std::string::npos) << m;
  m = refused("/dev/null", O_RDONLY, S_IFREG | 0644);
  EXPECT_NE(m.find("is now a character device"), std::string::npos) << m;
  EXPECT_NO_THROW(open_checked("/dev/null", O_RDONLY, true, S_IFCHR | 0666, "file 3"));
  // Without a mode in the image, only a FIFO or socket is refused.
  std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THROW(open_checked(fifo, O_RDONLY, false, 0, "file 3"), Error);
  EXPECT_NO_THROW(open_checked("/dev/null", O_RDONLY, false, 0, "file 3"));
}

TEST_F(OpenTest, NonBlockingOnlyWhenTheImageSaysSo) {
  std::string path = dir_ + "/plain";
  close(open(path.c_str(), O_CREAT | O_WRONLY, 0600));
  Fd fd = open_checked(path, O_RDWR, true, S_IFREG | 0600, "file 3");
  EXPECT_EQ(fcntl(fd.get(), F_GETFL) & (O_NONBLOCK | O_ACCMODE), O_RDWR);
  fd = open_checked(path, O_RDONLY | O_NONBLOCK, true, S_IFREG | 0600, "file 3");
  EXPECT_EQ(fcntl(fd.get(), F_GETFL) & O_NONBLOCK, O_NONBLOCK);
  fd = open_checked(path, O_PATH, true, S_IFREG | 0600, "file 3");
  EXPECT_EQ(fcntl(fd.get(), F_GETFL) & O_PATH, O_PATH);
}

TEST_F(OpenTest, ControlCharactersOfThePathAreEscaped) {
  std::string path = dir_ + "/a\x1b[2Jb";
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  std::string m = refused(path, O_RDONLY, S_IFREG | 0644);
  EXPECT_EQ(m.find('\x1b'), std::string::npos) << m;
  EXPECT_NE(m.find("a\\x1b[2Jb"), std::string::npos) << m;
}

TEST_F(OpenTest, PipeDataLargerThanThePipeFailsWithoutBlocking) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  Fd rd(p[0]), wr(p[1]);
  ASSERT_GE(fcntl(wr.get(), F_SETPIPE_SZ, 4096), 0);
  const int size = fcntl(wr.get(), F_GETPIPE_SZ);
  try {
    put_pipe_data(wr.get(), std::string(size + 1, 'x'), 77);
    ADD_FAILURE() << "more data than the pipe holds was accepted";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("pipe 77"), std::string::npos) << m;
    EXPECT_NE(m.find(std::to_string(size + 1) + " saved bytes"), std::string::npos) << m;
  }
  // What fits goes in whole.
  int q[2];
  ASSERT_EQ(pipe2(q, O_CLOEXEC), 0);
  Fd rd2(q[0]), wr2(q[1]);
  EXPECT_NO_THROW(put_pipe_data(wr2.get(), std::string(1000, 'y'), 78));
  char buf[2000];
  EXPECT_EQ(read(rd2.get(), buf, sizeof buf), 1000);
}

}  // namespace
}  // namespace cryo::restore
