// Image files: magic, entries, truncation and corruption are reported with the file named.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "base/error.h"
#include "image/image.h"
#include "inventory.pb.h"
#include "pstree.pb.h"

namespace cryo::image {
namespace {

class ImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cryo-image-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string read_all(const std::string& name) {
    std::ifstream f(dir_ + "/" + name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  void write_all(const std::string& name, const std::string& data) {
    std::ofstream f(dir_ + "/" + name, std::ios::binary | std::ios::trunc);
    f << data;
  }
  std::string dir_;
};

pstree_entry entry(uint32_t pid) {
  pstree_entry e;
  e.set_pid(pid);
  e.set_ppid(1);
  e.set_pgid(pid);
  e.set_sid(pid);
  e.add_threads(pid);
  return e;
}

TEST_F(ImageTest, RoundTripWithCommonMagic) {
  Writer w(dir_, "pstree.img", magic::kPstree);
  w.put(entry(10));
  w.put(entry(11));
  w.close();
  std::string raw = read_all("pstree.img");
  uint32_t m0, m1;
  memcpy(&m0, raw.data(), 4);
  memcpy(&m1, raw.data() + 4, 4);
  EXPECT_EQ(m0, magic::kCommon);
  EXPECT_EQ(m1, magic::kPstree);
  Reader r(dir_, "pstree.img", magic::kPstree);
  pstree_entry e;
  ASSERT_TRUE(r.next(e));
  EXPECT_EQ(e.pid(), 10u);
  ASSERT_TRUE(r.next(e));
  EXPECT_EQ(e.pid(), 11u);
  EXPECT_FALSE(r.next(e));
}

TEST_F(ImageTest, InventoryHasOnlyItsOwnMagic) {
  inventory_entry inv;
  inv.set_img_version(kImagesV1_1);
  write_one(dir_, "inventory.img", magic::kInventory, inv);
  std::string raw = read_all("inventory.img");
  uint32_t m0;
  memcpy(&m0, raw.data(), 4);
  EXPECT_EQ(m0, magic::kInventory);
  inventory_entry back;
  read_one(dir_, "inventory.img", magic::kInventory, back);
  EXPECT_EQ(back.img_version(), kImagesV1_1);
}

TEST_F(ImageTest, MissingRequiredFieldIsAnErrorNotACrash) {
  pstree_entry e;
  e.set_pid(1);
  Writer w(dir_, "pstree.img", magic::kPstree);
  EXPECT_THROW(w.put(e), Error);
}

TEST_F(ImageTest, UnclosedWriterLeavesNoImage) {
  {
    Writer w(dir_, "pstree.img", magic::kPstree);
    w.put(entry(1));
  }
  EXPECT_FALSE(exists(dir_, "pstree.img"));
}

TEST_F(ImageTest, TruncatedEntryNamesTheFile) {
  write_one(dir_, "pstree.img", magic::kPstree, entry(42));
  std::string raw = read_all("pstree.img");
  write_all("pstree.img", raw.substr(0, raw.size() - 3));
  Reader r(dir_, "pstree.img", magic::kPstree);
  pstree_entry e;
  try {
    r.next(e);
    FAIL() << "no error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("pstree.img is truncated"), std::string::npos)
        << err.what();
  }
}

TEST_F(ImageTest, BadMagicNamesTheFile) {
  write_one(dir_, "pstree.img", magic::kPstree, entry(42));
  std::string raw = read_all("pstree.img");
  raw.replace(0, 8, "garbage!");
  write_all("pstree.img", raw);
  try {
    Reader r(dir_, "pstree.img", magic::kPstree);
    FAIL() << "no error";
  } catch (const Error& err) {
    std::string m = err.what();
    EXPECT_NE(m.find("pstree.img"), std::string::npos) << m;
    EXPECT_NE(m.find("magic"), std::string::npos) << m;
  }
}

TEST_F(ImageTest, WrongKindOfImage) {
  write_one(dir_, "core-1.img", magic::kCore, entry(1));
  EXPECT_THROW(Reader(dir_, "core-1.img", magic::kMm), Error);
}

TEST_F(ImageTest, ReadOneRefusesBytesAfterItsEntry) {
  write_one(dir_, "core-1.img", magic::kPstree, entry(1));
  pstree_entry e;
  EXPECT_NO_THROW(read_one(dir_, "core-1.img", magic::kPstree, e));
  write_all("core-1.img", read_all("core-1.img") + "abc");
  try {
    read_one(dir_, "core-1.img", magic::kPstree, e);
    FAIL() << "trailing bytes accepted";
  } catch (const Error& err) {
    std::string m = err.what();
    EXPECT_NE(m.find("core-1.img"), std::string::npos) << m;
    EXPECT_NE(m.find("3 bytes follow"), std::string::npos) << m;
  }
  // A second whole entry is refused the same way.
  Writer w(dir_, "core-2.img", magic::kPstree);
  w.put(entry(1));
  w.put(entry(2));
  w.close();
  EXPECT_THROW(read_one(dir_, "core-2.img", magic::kPstree, e), Error);
}

// An entry lacking required fields: one message from cryo naming them, nothing from
// libprotobuf on stderr.
TEST_F(ImageTest, MissingRequiredFieldOnReadIsOneMessage) {
  silence_protobuf_log();
  pstree_entry partial;
  partial.set_pid(5);
  std::string body = partial.SerializePartialAsString();
  std::string raw;
  uint32_t words[3] = {magic::kCommon, magic::kPstree, static_cast<uint32_t>(body.size())};
  raw.append(reinterpret_cast<const char*>(words), sizeof words);
  write_all("pstree.img", raw + body);
  testing::internal::CaptureStderr();
  pstree_entry e;
  EXPECT_FALSE(e.ParseFromString(body));  // libprotobuf would log this one itself
  std::string what;
  try {
    Reader r(dir_, "pstree.img", magic::kPstree);
    r.next(e);
  } catch (const Error& err) {
    what = err.what();
  }
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_NE(what.find("pstree.img"), std::string::npos) << what;
  EXPECT_NE(what.find("ppid"), std::string::npos) << what;
}

TEST_F(ImageTest, MissingFile) {
  EXPECT_THROW(Reader(dir_, "nope.img", magic::kMm), Error);
}

}  // namespace
}  // namespace cryo::image
