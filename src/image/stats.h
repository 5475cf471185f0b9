// Dump and restore statistics: the stats-dump / stats-restore images (CRIU's stats_entry,
// every field CRIU writes, zeros included), their --display-stats text in CRIU's words,
// and the same figures as JSON (--stats-json) for scripts.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/fd.h"
#include "stats.pb.h"

namespace cryo::image {

// A dump_stats_entry / restore_stats_entry with every field CRIU always writes set to 0.
stats_entry empty_dump_stats();
stats_entry empty_restore_stats();

// What CRIU's --display-stats prints for `s` (lines ending in '\n').
std::string stats_text(const stats_entry& s);

// `s` as a JSON object named like the image's fields ({"dump": {"freezing_time": ..., ...}}),
// integers as JSON numbers, times in microseconds as in the image.
std::string stats_json(const stats_entry& s);

// --stats-json FILE: created (or reused if cryo's own regular file, see open_own_file) when
// the action starts, so a path that cannot be used fails before anything is done; the
// figures are written when the action ends. If it fails before, the file is removed again.
// An empty path does nothing.
class StatsJsonFile {
 public:
  explicit StatsJsonFile(const std::string& path);
  StatsJsonFile(const StatsJsonFile&) = delete;
  StatsJsonFile& operator=(const StatsJsonFile&) = delete;
  ~StatsJsonFile();
  void write(const stats_entry& s);

 private:
  std::string path_;
  Fd fd_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

}  // namespace cryo::image
