#include "image/image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include <google/protobuf/stubs/logging.h>

#include "base/log.h"
#include "base/own_file.h"

namespace cryo::image {
namespace {

constexpr size_t kFlushAt = 1 << 20;

std::string magic_name(uint32_t m) {
  switch (m) {
    case magic::kInventory:
      return "INVENTORY";
    case magic::kPstree:
      return "PSTREE";
    case magic::kFdinfo:
      return "FDINFO";
    case magic::kPagemap:
      return "PAGEMAP";
    case magic::kCore:
      return "CORE";
    case magic::kIds:
      return "IDS";
    case magic::kMm:
      return "MM";
    case magic::kFs:
      return "FS";
    case magic::kFiles:
      return "FILES";
    case magic::kStats:
      return "STATS";
    case magic::kTtyInfo:
      return "TTY_INFO";
    case magic::kTtyData:
      return "TTY_DATA";
  }
  return fmt::format("{:#x}", m);
}

void append_u32(std::string& s, uint32_t v) {
  s.append(reinterpret_cast<const char*>(&v), 4);
}

}  // namespace

Writer::Writer(const std::string& dir, const std::string& name, uint32_t magic, bool service)
    : dir_(dir), name_(name), tmp_(magic == magic::kInventory ? "." + name + ".part" : name) {
  fd_ = create_raw(dir_, tmp_);
  if (magic != magic::kInventory) append_u32(buf_, service ? magic::kService : magic::kCommon);
  append_u32(buf_, magic);
}

Writer::~Writer() {
  if (fd_) {
    fd_.reset();
    ::unlink((dir_ + "/" + tmp_).c_str());
  }
}

void Writer::flush() {
  size_t off = 0;
  while (off < buf_.size()) {
    ssize_t n = ::write(fd_.get(), buf_.data() + off, buf_.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_sys("cannot write image {}/{}", dir_, name_);
    }
    off += n;
  }
  buf_.clear();
}

void Writer::put(const google::protobuf::MessageLite& m) {
  if (!m.IsInitialized())
    fail("cannot encode an entry of image {}: missing required fields {}", name_,
         m.InitializationErrorString());
  std::string body;
  if (!m.SerializeToString(&body)) fail("cannot encode an entry of image {}", name_);
  append_u32(buf_, static_cast<uint32_t>(body.size()));
  buf_ += body;
  if (buf_.size() >= kFlushAt) flush();
}

void Writer::put_raw(const void* data, size_t len) {
  buf_.append(static_cast<const char*>(data), len);
  if (buf_.size() >= kFlushAt) flush();
}

void Writer::close() {
  flush();
  fd_.reset();
  if (tmp_ != name_ && ::rename((dir_ + "/" + tmp_).c_str(), (dir_ + "/" + name_).c_str()) < 0)
    fail_sys("cannot rename image {}/{}", dir_, name_);
}

Reader::Reader(const std::string& dir, const std::string& name, uint32_t magic) : name_(name) {
  std::string path = dir + "/" + name;
  Fd fd = open_image(path);
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) fail_sys("cannot stat image {}", path);
  // Read whole: a size no dump writes (a sparse file of terabytes) must not be allocated.
  const uint64_t ram = static_cast<uint64_t>(::sysconf(_SC_PHYS_PAGES)) *
                       static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  if (static_cast<uint64_t>(st.st_size) > ram / 2)
    fail(
        "image {} is {} bytes, more than half of this machine's memory: corrupt, or too large "
        "to read",
        path, st.st_size);
  data_.resize(st.st_size);
  size_t got = 0;
  while (got < data_.size()) {
    ssize_t n = ::read(fd.get(), data_.data() + got, data_.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_sys("cannot read image {}", path);
    if (n == 0) break;
    got += n;
  }
  data_.resize(got);
  auto u32 = [&](size_t at) {
    uint32_t v;
    std::memcpy(&v, data_.data() + at, 4);
    return v;
  };
  if (data_.size() < 4) fail("image {} is truncated: no magic (size {})", path, data_.size());
  uint32_t first = u32(0);
  off_ = 4;
  if (magic != magic::kInventory && (first == magic::kCommon || first == magic::kService)) {
    if (data_.size() < 8) fail("image {} is truncated: no magic (size {})", path, data_.size());
    first = u32(4);
    off_ = 8;
  }
  if (first != magic)
    fail("image {} has a bad magic {:#x} (expected {} {:#x}): corrupt or not a {} image", path,
         first, magic_name(magic), magic, magic_name(magic));
}

bool Reader::next(google::protobuf::MessageLite& m) {
  if (off_ >= data_.size()) return false;
  if (data_.size() - off_ < 4)
    fail("image {} is truncated: {} stray bytes at offset {}", name_, data_.size() - off_, off_);
  uint32_t len;
  std::memcpy(&len, data_.data() + off_, 4);
  if (data_.size() - off_ - 4 < len)
    fail("image {} is truncated: entry at offset {} claims {} bytes, only {} left", name_, off_,
         len, data_.size() - off_ - 4);
  // Parsed partially, then checked: the missing fields are named in cryo's one message
  // (ParseFromArray would log them through libprotobuf first).
  if (len > static_cast<uint32_t>(INT32_MAX) ||
      !m.ParsePartialFromArray(data_.data() + off_ + 4, static_cast<int>(len)))
    fail("image {} is corrupt: entry at offset {} ({} bytes) does not decode as {}", name_, off_,
         len, m.GetTypeName());
  if (!m.IsInitialized())
    fail("image {} is corrupt: entry at offset {} ({}) lacks required field(s) {}", name_, off_,
         m.GetTypeName(), m.InitializationErrorString());
  off_ += 4 + len;
  return true;
}

std::string_view Reader::take_raw(size_t len) {
  if (data_.size() - off_ < len)
    fail("image {} is truncated: {} raw bytes expected at offset {}", name_, len, off_);
  std::string_view v(data_.data() + off_, len);
  off_ += len;
  return v;
}

void write_one(const std::string& dir, const std::string& name, uint32_t magic,
               const google::protobuf::MessageLite& m, bool service) {
  Writer w(dir, name, magic, service);
  w.put(m);
  w.close();
}

void read_one(const std::string& dir, const std::string& name, uint32_t magic,
              google::protobuf::MessageLite& m) {
  Reader r(dir, name, magic);
  if (!r.next(m)) fail("image {}/{} is truncated: it holds no entry", dir, name);
  // Bytes after the one entry are a second entry or garbage: neither belongs there.
  if (!r.at_end())
    fail("image {}/{} is corrupt: {} bytes follow its one entry (at offset {})", dir, name,
         r.remaining(), r.offset());
}

void silence_protobuf_log() {
  // libprotobuf logs some failures itself; cryo reports them in its own message. Its lines
  // go to cryo's log at debug level instead of stderr.
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char* file, int line, const std::string& msg) {
        log::debug("libprotobuf {}:{}: {}", file, line, msg);
      });
}

bool exists(const std::string& dir, const std::string& name) {
  return ::access((dir + "/" + name).c_str(), F_OK) == 0;
}

Fd create_raw(const std::string& dir, const std::string& name) {
  return recreate_file(dir + "/" + name, "image");
}

Fd open_image(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd && errno == ELOOP)
    fail(
        "image {} is a symbolic link: cryo reads only regular files as images; put the file "
        "itself in the images directory",
        path);
  if (!fd) fail_sys("cannot open image {}", path);
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) fail_sys("cannot stat image {}", path);
  if (!S_ISREG(st.st_mode))
    fail("image {} is {}, not a regular file: cryo reads only regular files as images", path,
         file_type_name(st.st_mode));
  return fd;
}

}  // namespace cryo::image
