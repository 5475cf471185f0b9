// Pages of a task through a chain of images (restore/page_chain.h): runs marked in the parent
// are read from the images the "parent" link leads to; a page no parent holds is an error.
#include "restore/page_chain.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "image/image.h"
#include "pagemap.pb.h"

namespace cryo::restore {
namespace {

constexpr uint64_t kPage = 4096;

pagemap_entry run(uint64_t vaddr, uint32_t pages, uint32_t flags) {
  pagemap_entry e;
  e.set_vaddr(vaddr);
  e.set_nr_pages(pages);
  e.set_flags(flags);
  return e;
}

class PageChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cryo-chain-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    ASSERT_EQ(::mkdir((root_ + "/1").c_str(), 0700), 0);
    ASSERT_EQ(::mkdir((root_ + "/2").c_str(), 0700), 0);
  }
  void TearDown() override { std::system(("rm -rf " + root_).c_str()); }
  // pagemap-7.img and pages-1.img in DIR: `runs`, page k of the pages file filled with `fill[k]`.
  void write(const std::string& dir, const std::vector<pagemap_entry>& runs,
             const std::string& fill) {
    image::Writer w(root_ + "/" + dir, "pagemap-7.img", image::magic::kPagemap);
    pagemap_head h;
    h.set_pages_id(1);
    w.put(h);
    for (const auto& e : runs) w.put(e);
    w.close();
    std::ofstream f(root_ + "/" + dir + "/pages-1.img", std::ios::binary | std::ios::trunc);
    for (char c : fill) f << std::string(kPage, c);
  }
  std::string root_;
};

TEST_F(PageChainTest, RunsInTheParentAreReadFromIt) {
  write("1", {run(0x11000, 5, image::kPePresent)}, "abcde");
  std::vector<pagemap_entry> top{run(0x10000, 2, image::kPePresent),
                                 run(0x12000, 3, image::kPeParent)};
  write("2", top, "XY");
  ASSERT_EQ(::symlink("../1", (root_ + "/2/parent").c_str()), 0);
  PageChain chain(root_ + "/2", 7, 1, top);
  std::string got;
  uint64_t expect_at = 0x10000;
  for (const auto& r : chain.runs()) {
    EXPECT_EQ(r.vaddr, expect_at);
    for (uint64_t at = 0; at < r.len; at += kPage) got += r.data[at];
    expect_at = r.vaddr + r.len;
  }
  EXPECT_EQ(got, "XYbcd");  // the parent's pages from its second one on
  EXPECT_EQ(chain.from_parents(), 3u);
}

TEST_F(PageChainTest, APageNoParentHoldsIsRefused) {
  write("1", {run(0x11000, 2, image::kPePresent)}, "ab");
  std::vector<pagemap_entry> top{run(0x12000, 2, image::kPeParent)};
  write("2", top, "");
  ASSERT_EQ(::symlink("../1", (root_ + "/2/parent").c_str()), 0);
  try {
    PageChain chain(root_ + "/2", 7, 1, top);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("images chain is broken"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("0x13000"), std::string::npos) << e.what();
  }
}

TEST_F(PageChainTest, AMissingParentIsRefused) {
  std::vector<pagemap_entry> top{run(0x12000, 1, image::kPeParent)};
  write("2", top, "");
  try {
    PageChain chain(root_ + "/2", 7, 1, top);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("images chain is broken"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cryo::restore
