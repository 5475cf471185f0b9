// Image files in CRIU's format: [common magic] magic { u32 size, protobuf message [extra] }.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/message_lite.h>

#include "base/error.h"
#include "base/fd.h"

namespace cryo::image {

// Magic numbers are facts of CRIU's format.
namespace magic {
constexpr uint32_t kCommon = 0x54564319;
constexpr uint32_t kService = 0x55105940;
constexpr uint32_t kInventory = 0x58313116;
constexpr uint32_t kPstree = 0x50273030;
constexpr uint32_t kFdinfo = 0x56213732;
constexpr uint32_t kPagemap = 0x56084025;
constexpr uint32_t kCore = 0x55053847;
constexpr uint32_t kIds = 0x54432030;
constexpr uint32_t kMm = 0x57492820;
constexpr uint32_t kFs = 0x51403912;
constexpr uint32_t kFiles = 0x56303138;
constexpr uint32_t kStats = 0x57093306;
constexpr uint32_t kTtyInfo = 0x59453036;
constexpr uint32_t kSeccomp = 0x64413049;
constexpr uint32_t kPipesData = 0x56453709;
constexpr uint32_t kFifoData = 0x59333054;
constexpr uint32_t kSkQueues = 0x56264026;
constexpr uint32_t kMemfdInode = 0x48453499;
constexpr uint32_t kGhostFile = 0x52583605;
constexpr uint32_t kRemapFpath = 0x59133954;
constexpr uint32_t kFileLocks = 0x54323616;
constexpr uint32_t kTtyData = 0x59413026;
constexpr uint32_t kIpcnsShm = 0x46283044;
constexpr uint32_t kIpcVar = 0x53115007;
constexpr uint32_t kTimens = 0x43114433;
constexpr uint32_t kUtsns = 0x54473203;
constexpr uint32_t kTcpStream = 0x51465506;
constexpr uint32_t kCgroup = 0x59383330;
}  // namespace magic

constexpr uint32_t kImagesV1_1 = 2;  // inventory_entry.img_version

// Pagemap entry flags.
constexpr uint32_t kPeParent = 1u << 0;
constexpr uint32_t kPeLazy = 1u << 1;
constexpr uint32_t kPePresent = 1u << 2;

// vma_entry.status bits.
enum VmaStatus : uint32_t {
  kVmaRegular = 1u << 0,
  kVmaStack = 1u << 1,
  kVmaVsyscall = 1u << 2,
  kVmaVdso = 1u << 3,
  kVmaHeap = 1u << 5,
  kVmaFilePrivate = 1u << 6,
  kVmaFileShared = 1u << 7,
  kVmaAnonShared = 1u << 8,
  kVmaAnonPrivate = 1u << 9,
  kVmaSysvipc = 1u << 10,
  kVmaSocket = 1u << 11,
  kVmaVvar = 1u << 12,
  kVmaAioring = 1u << 13,
  kVmaMemfd = 1u << 14,
  kVmaUnsupp = 1u << 31,
};

// vma_entry.flags of a hugetlb mapping, as CRIU writes them and mmap takes them: MAP_HUGETLB
// and log2 of the page size in the bits above MAP_HUGE_SHIFT (26).
constexpr uint32_t kVmaHugetlbFlags = 0x40000u | (0x3fu << 26);

// task_core_entry.task_state values.
constexpr uint32_t kTaskAlive = 1, kTaskDead = 2, kTaskStopped = 3;

// Writes one image file: magic, then entries. The file appears under its final name only
// when close() succeeds (written to a temporary name and renamed).
class Writer {
 public:
  Writer(const std::string& dir, const std::string& name, uint32_t magic, bool service = false);
  Writer(Writer&&) = default;
  ~Writer();
  void put(const google::protobuf::MessageLite& m);
  void put_raw(const void* data, size_t len);
  void close();
  const std::string& name() const { return name_; }

 private:
  void flush();
  std::string dir_, name_, tmp_;
  Fd fd_;
  std::string buf_;
};

// Reads one image file whole and checks its magic.
class Reader {
 public:
  Reader(const std::string& dir, const std::string& name, uint32_t magic);
  // False at the end; throws when the next entry is truncated or does not parse.
  bool next(google::protobuf::MessageLite& m);
  std::string_view take_raw(size_t len);
  bool at_end() const { return off_ >= data_.size(); }
  size_t offset() const { return off_; }
  size_t remaining() const { return data_.size() - off_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::string data_;
  size_t off_ = 0;
};

// Convenience: an image holding exactly one entry (anything after it is refused).
void write_one(const std::string& dir, const std::string& name, uint32_t magic,
               const google::protobuf::MessageLite& m, bool service = false);
void read_one(const std::string& dir, const std::string& name, uint32_t magic,
              google::protobuf::MessageLite& m);

bool exists(const std::string& dir, const std::string& name);

// Creates DIR/NAME for writing, mode 0600, removing a file or symlink an earlier run left
// there and never writing through a link (see recreate_file): for raw images written in place.
Fd create_raw(const std::string& dir, const std::string& name);
// Opens an image file for reading: a symlink is not followed and anything but a regular file
// is refused (a FIFO put in an image's place must not hang the restore).
Fd open_image(const std::string& path);
// Sends libprotobuf's own log lines to cryo's debug log: an error is cryo's one message.
void silence_protobuf_log();

}  // namespace cryo::image
