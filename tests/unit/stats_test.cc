// Statistics: the stats images' fields, CRIU's --display-stats text, --stats-json, and the
// progress line.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "base/progress.h"
#include "image/image.h"
#include "image/stats.h"

namespace cryo {
namespace {

TEST(Stats, DumpEntryHasEveryFieldCriuWrites) {
  stats_entry s = image::empty_dump_stats();
  const auto& d = s.dump();
  EXPECT_TRUE(d.has_irmap_resolve());
  EXPECT_TRUE(d.has_page_pipes());
  EXPECT_TRUE(d.has_page_pipe_bufs());
  EXPECT_TRUE(d.has_shpages_scanned());
  EXPECT_TRUE(d.has_shpages_skipped_parent());
  EXPECT_TRUE(d.has_shpages_written());
  EXPECT_TRUE(d.IsInitialized());  // every required field too
  // On the wire: fields 1..14, all present although zero.
  dump_stats_entry back;
  ASSERT_TRUE(back.ParseFromString(s.dump().SerializeAsString()));
  EXPECT_TRUE(back.has_shpages_written());
  EXPECT_TRUE(back.has_irmap_resolve());
}

TEST(Stats, RestoreEntryHasPagesRestored) {
  stats_entry s = image::empty_restore_stats();
  EXPECT_TRUE(s.restore().has_pages_restored());
  EXPECT_TRUE(s.restore().IsInitialized());
}

TEST(Stats, DisplayTextIsCriusFormat) {
  stats_entry s = image::empty_dump_stats();
  auto* d = s.mutable_dump();
  d->set_freezing_time(12);
  d->set_frozen_time(3456);
  d->set_memdump_time(78);
  d->set_memwrite_time(90);
  d->set_pages_scanned(300);
  d->set_pages_written(255);
  EXPECT_EQ(image::stats_text(s),
            "Displaying dump stats:\n"
            "Freezing time: 12 us\n"
            "Frozen time: 3456 us\n"
            "Memory dump time: 78 us\n"
            "Memory write time: 90 us\n"
            "IRMAP resolve time: 0 us\n"
            "Memory pages scanned: 300 (0x12c)\n"
            "Memory pages skipped from parent: 0 (0x0)\n"
            "Memory pages written: 255 (0xff)\n"
            "Lazy memory pages: 0 (0x0)\n");
  stats_entry r = image::empty_restore_stats();
  r.mutable_restore()->set_forking_time(5);
  r.mutable_restore()->set_restore_time(700);
  r.mutable_restore()->set_pages_restored(16);
  EXPECT_EQ(image::stats_text(r),
            "Displaying restore stats:\n"
            "Pages compared: 0 (0x0)\n"
            "Pages skipped COW: 0 (0x0)\n"
            "Pages restored: 16 (0x10)\n"
            "Restore time: 700 us\n"
            "Forking time: 5 us\n");
}

TEST(Stats, JsonHasTheImageFieldNamesAndNumbers) {
  stats_entry r = image::empty_restore_stats();
  r.mutable_restore()->set_pages_restored(18446744073709551615ULL);
  r.mutable_restore()->set_restore_time(4294967295U);
  EXPECT_EQ(image::stats_json(r),
            "{\n"
            "  \"restore\": {\n"
            "    \"pages_compared\": 0,\n"
            "    \"pages_skipped_cow\": 0,\n"
            "    \"forking_time\": 0,\n"
            "    \"restore_time\": 4294967295,\n"
            "    \"pages_restored\": 18446744073709551615\n"
            "  }\n"
            "}\n");
  std::string d = image::stats_json(image::empty_dump_stats());
  for (const char* k :
       {"freezing_time", "frozen_time", "memdump_time", "memwrite_time", "pages_scanned",
        "pages_skipped_parent", "pages_written", "irmap_resolve", "pages_lazy", "page_pipes",
        "page_pipe_bufs", "shpages_scanned", "shpages_skipped_parent", "shpages_written"})
    EXPECT_NE(d.find(fmt::format("\"{}\": 0", k)), std::string::npos) << k << " in " << d;
}

TEST(Stats, JsonFileIsRemovedWhenNeverWritten) {
  char tmpl[] = "/tmp/cryo-stats-test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  {
    image::StatsJsonFile f(dir + "/failed.json");
    struct stat st;
    ASSERT_EQ(::stat((dir + "/failed.json").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
  EXPECT_NE(::access((dir + "/failed.json").c_str(), F_OK), 0);
  {
    image::StatsJsonFile f(dir + "/ok.json");
    f.write(image::empty_restore_stats());
  }
  std::ifstream in(dir + "/ok.json");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, image::stats_json(image::empty_restore_stats()));
  // A symlink planted at the path is refused, not written through.
  ASSERT_EQ(::symlink("/etc/passwd", (dir + "/link.json").c_str()), 0);
  EXPECT_THROW(image::StatsJsonFile(dir + "/link.json"), Error);
  std::system(("rm -rf " + dir).c_str());
}

TEST(Progress, Line) {
  EXPECT_EQ(progress::format_line("dump", "freezing", 0, 0, 0, 1.25, 80),
            "cryo dump: freezing | 1.2 s");
  EXPECT_EQ(progress::format_line("restore", "memory of task 42", 512, 2048, 1536.4, 3.06, 200),
            "cryo restore: memory of task 42 | 512/2048 pages (25%) | 1536 MiB/s | 3.1 s");
  // Never wider than the terminal: a wrapped line cannot be redrawn in place.
  EXPECT_EQ(progress::format_line("dump", "memory of task 42", 1, 2, 0, 0, 20).size(), 19u);
}

}  // namespace
}  // namespace cryo
