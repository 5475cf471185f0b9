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

}  // namespace cryo::image
