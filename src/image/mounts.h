// Format facts of CRIU's mount images, shared by dump/mounts.cc and restore/mounts.cc.
#pragma once

#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace cryo::image {

// mnt_entry.fstype: CRIU's numbers for the file systems cryo handles.
enum FsType : uint32_t {
  kFsUnsupported = 0,
  kFsProc = 1,
  kFsSysfs = 2,
  kFsTmpfs = 5,
  kFsDevpts = 6,
  kFsMqueue = 14,
  kFsAuto = 16,  // mounted anew by its name (fsname), as --enable-fs asks
};

inline constexpr uint32_t kMntsMagic = 0x55563928;  // MNTS

inline std::string mountpoints_image(uint32_t ns_id) {
  return fmt::format("mountpoints-{}.img", ns_id);
}
// A tmpfs's files, a gzip'ed tar, named by the kernel dev of its superblock.
inline std::string tmpfs_image(uint32_t root_dev) {
  return fmt::format("tmpfs-dev-{}.tar.gz.img", root_dev);
}

// Paths of mounts. True when `path` is `dir` or below it.
inline bool path_under(const std::string& path, const std::string& dir) {
  if (dir == "/") return true;
  return path.compare(0, dir.size(), dir) == 0 &&
         (path.size() == dir.size() || path[dir.size()] == '/');
}
// What `root` (a directory inside a file system) is below a mount of it whose root is `base`
// (`root` under `base`).
inline std::string path_below(const std::string& root, const std::string& base) {
  if (base == "/") return root;
  return root.size() == base.size() ? "/" : root.substr(base.size());
}
// `rest` (absolute, "/" for nothing) below directory `dir`.
inline std::string path_join(const std::string& dir, const std::string& rest) {
  if (rest == "/" || rest.empty()) return dir;
  return dir == "/" ? rest : dir + rest;
}

}  // namespace cryo::image
