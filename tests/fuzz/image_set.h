// A set of image files (one images directory) held for mutation: small files in memory, large
// raw ones (pages) by path with the edits to make on a copy.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cryo::fuzz {

struct ImageFile {
  std::string name;
  std::string source;  // the original's path; empty for a file a mutation made up
  uint64_t size = 0;
  std::optional<std::string> data;  // content, for files kept in memory
  bool changed = false;             // differs from `source`
  // Edits of a large file not kept in memory, made on a copy of it.
  std::optional<uint64_t> resize;
  std::vector<std::pair<uint64_t, std::string>> patches;
  uint64_t current_size() const { return data ? data->size() : resize.value_or(size); }
};

class ImageSet {
 public:
  // Reads `dir`; files up to `keep_limit` bytes are kept in memory.
  static ImageSet load(const std::string& dir, uint64_t keep_limit = 1 << 20);
  // Writes the set into `dir` (which must exist and be empty): unchanged files as hard links
  // to their originals where possible, else copies.
  void write(const std::string& dir) const;

  ImageFile* find(const std::string& name);
  const std::string& dir() const { return dir_; }
  std::vector<ImageFile> files;  // sorted by name

 private:
  std::string dir_;
};

// Images directories in `root`: itself when it holds inventory.img, else its subdirectories
// down to `depth` levels, in name order.
void find_sets(const std::string& root, int depth, std::vector<std::string>& out);
void remove_tree(const std::string& path);
void make_dir(const std::string& path);

// Reads a whole file; throws cryo::Error when it cannot.
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& data);

}  // namespace cryo::fuzz
