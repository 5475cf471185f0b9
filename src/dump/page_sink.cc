#include "dump/page_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fd.h"
#include "image/image.h"

namespace cryo::dump {
namespace {

class LocalImage final : public PageImage {
 public:
  LocalImage(const std::string& dir, PagemapKind kind, uint64_t id, uint32_t pages_id)
      : dir_(dir),
        pages_name_(fmt::format("pages-{}.img", pages_id)),
        pages_(image::create_raw(dir, pages_name_)),
        pm_(dir, pagemap_name(kind, id), image::magic::kPagemap) {
    pagemap_head head;
    head.set_pages_id(pages_id);
    pm_.put(head);
  }
  ~LocalImage() override {
    if (pages_) ::unlink((dir_ + "/" + pages_name_).c_str());  // abandoned
  }

  void entry(const pagemap_entry& e) override { pm_.put(e); }

  void write(uint64_t off, const void* data, size_t len) override {
    auto p = static_cast<const char*>(data);
    while (len > 0) {
      ssize_t n = ::pwrite(pages_.get(), p, len, static_cast<off_t>(off));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail_sys("cannot write image {}/{}", dir_, pages_name_);
      p += n;
      off += static_cast<uint64_t>(n);
      len -= static_cast<size_t>(n);
    }
  }

  void write_from_pipe(uint64_t off, int pipe, size_t len) override {
    loff_t at = static_cast<loff_t>(off);
    while (len > 0) {
      ssize_t n = ::splice(pipe, nullptr, pages_.get(), &at, len, SPLICE_F_MOVE);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail_sys("cannot write image {}/{}", dir_, pages_name_);
      len -= static_cast<size_t>(n);
    }
  }

  void close() override {
    pm_.close();
    if (::close(pages_.release()) < 0) fail_sys("cannot write image {}/{}", dir_, pages_name_);
  }

 private:
  std::string dir_, pages_name_;
  Fd pages_;
  image::Writer pm_;
};

class LocalSink final : public PageSink {
 public:
  explicit LocalSink(std::string dir) : dir_(std::move(dir)) {}
  bool streamed() const override { return false; }
  bool has_parent(PagemapKind kind, uint64_t id) override {
    struct stat st;
    return ::stat((dir_ + "/parent/" + pagemap_name(kind, id)).c_str(), &st) == 0;
  }
  std::unique_ptr<PageImage> open(PagemapKind kind, uint64_t id, uint32_t pages_id) override {
    return std::make_unique<LocalImage>(dir_, kind, id, pages_id);
  }
  void finish() override {}

 private:
  std::string dir_;
};

}  // namespace

void PageImage::write_from_pipe(uint64_t, int, size_t) {
  fail("internal: this page image takes no pipe");
}

std::string pagemap_name(PagemapKind kind, uint64_t id) {
  return kind == PagemapKind::kTask ? fmt::format("pagemap-{}.img", id)
                                    : fmt::format("pagemap-shmem-{}.img", id);
}

std::unique_ptr<PageSink> local_sink(std::string dir) {
  return std::make_unique<LocalSink>(std::move(dir));
}

}  // namespace cryo::dump
