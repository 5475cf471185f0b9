#include "pageserver/client.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

#include "base/error.h"
#include "base/log.h"
#include "image/image.h"
#include "kernel/syscalls.h"
#include "pageserver/protocol.h"

namespace cryo::pageserver {
namespace {

class RemoteSink;

// One image on the wire: the entries are kept until the pages reach them, then each goes
// as an ADD_F header followed by its pages.
class RemoteImage final : public dump::PageImage {
 public:
  RemoteImage(RemoteSink& sink, uint64_t dst, bool has_parent, std::string name,
              std::optional<image::Writer> record)
      : sink_(sink),
        dst_(dst),
        has_parent_(has_parent),
        name_(std::move(name)),
        record_(std::move(record)) {}
  ~RemoteImage() override;
  void entry(const pagemap_entry& e) override;
  void write(uint64_t off, const void* data, size_t len) override;
  void close() override;

 private:
  void send_header(const pagemap_entry& e);
  // Sends the entries up to the next one with pages (whose header goes, too).
  void advance();
  RemoteSink& sink_;
  uint64_t dst_;
  bool has_parent_;  // the server's answer to OPEN2
  std::string name_;
  std::optional<image::Writer> record_;
  std::deque<pagemap_entry> pending_;
  uint64_t sent_ = 0;        // bytes of pages sent
  uint64_t entry_left_ = 0;  // bytes of the current present entry still to send
  bool closed_ = false;
};

class RemoteSink final : public dump::PageSink {
 public:
  RemoteSink(Connection conn, bool shared, std::string record_dir)
      : conn_(std::move(conn)), shared_(shared), record_dir_(std::move(record_dir)) {}
  bool streamed() const override { return true; }

  bool has_parent(dump::PagemapKind kind, uint64_t id) override {
    Turn turn(*this);
    Header h;
    h.cmd = kParent;
    h.dst_id = to_dst(kind, id);
    conn_.send(&h, sizeof(h));
    int32_t answer = 0;
    conn_.recv(&answer, sizeof(answer));
    turn.done();
    return answer == 1;
  }

  std::unique_ptr<dump::PageImage> open(dump::PagemapKind kind, uint64_t id, uint32_t) override {
    acquire();
    char has_parent = 0;
    std::optional<image::Writer> record;
    try {
      Header h;
      h.cmd = kOpen2;
      h.dst_id = to_dst(kind, id);
      conn_.send(&h, sizeof(h));
      conn_.recv(&has_parent, 1);
      log::debug("page server: opened {} (parent: {})", dump::pagemap_name(kind, id),
                 has_parent ? "yes" : "no");
      if (!record_dir_.empty() && kind == dump::PagemapKind::kTask) {
        record.emplace(record_dir_, sent_pagemap_name(id), image::magic::kPagemap);
        pagemap_head head;
        head.set_pages_id(0);  // no pages: the server's image holds them
        record->put(head);
      }
    } catch (...) {
      release(false);
      throw;
    }
    return std::make_unique<RemoteImage>(*this, to_dst(kind, id), has_parent != 0,
                                         dump::pagemap_name(kind, id), std::move(record));
  }

  void finish() override {
    Turn turn(*this);
    Header h;
    h.cmd = shared_ ? kForceClose : kClose;
    conn_.send(&h, sizeof(h));
    int32_t status = -1;
    conn_.recv(&status, sizeof(status));
    if (status != 0)
      fail("{} refused the pages it received (status {}): see its log", conn_.peer(), status);
    conn_.end();
    turn.done();
    log::info("page server: all pages acknowledged by {}", conn_.peer());
  }

  Connection& conn() { return conn_; }

  // One image or request at a time on the connection.
  void acquire() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !busy_ || broken_; });
    if (broken_) fail("the connection to {} was lost earlier in this dump", conn_.peer());
    busy_ = true;
  }
  // `ok`: the protocol is in step; else nothing more can go on this connection.
  void release(bool ok) {
    {
      std::lock_guard lock(mu_);
      busy_ = false;
      if (!ok) broken_ = true;
    }
    cv_.notify_all();
  }

 private:
  static uint64_t to_dst(dump::PagemapKind kind, uint64_t id) {
    return dst_id(kind == dump::PagemapKind::kTask ? kTypeTask : kTypeShmem, id);
  }

  struct Turn {
    explicit Turn(RemoteSink& s) : s(s) { s.acquire(); }
    ~Turn() {
      if (!ok) s.release(false);
    }
    void done() {
      ok = true;
      s.release(true);
    }
    RemoteSink& s;
    bool ok = false;
  };

  Connection conn_;
  bool shared_;
  std::string record_dir_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool busy_ = false, broken_ = false;
};

RemoteImage::~RemoteImage() {
  if (!closed_) sink_.release(false);
}

void RemoteImage::entry(const pagemap_entry& e) {
  if (sent_ > 0) fail("internal: a pagemap entry after the pages of a streamed image");
  if ((e.flags() & image::kPeParent) && !has_parent_)
    fail(
        "{} has no parent image of {}, and this dump leaves pages in the parent "
        "(--prev-images-dir): start the page server with --prev-images-dir naming its images "
        "of the previous dump of the chain",
        sink_.conn().peer(), name_);
  if (record_) record_->put(e);
  pending_.push_back(e);
}

void RemoteImage::send_header(const pagemap_entry& e) {
  Header h;
  h.cmd = with_flags(kAddF, e.flags());
  h.nr_pages = e.nr_pages();
  h.vaddr = e.vaddr();
  h.dst_id = dst_;
  sink_.conn().send(&h, sizeof(h), (e.flags() & image::kPePresent) != 0);
}

void RemoteImage::advance() {
  while (entry_left_ == 0 && !pending_.empty()) {
    pagemap_entry e = std::move(pending_.front());
    pending_.pop_front();
    send_header(e);
    if (e.flags() & image::kPePresent) entry_left_ = uint64_t{e.nr_pages()} * kernel::kPageSize;
  }
}

void RemoteImage::write(uint64_t off, const void* data, size_t len) {
  if (off != sent_) fail("internal: pages of a streamed image out of order");
  auto p = static_cast<const char*>(data);
  while (len > 0) {
    advance();
    if (entry_left_ == 0) fail("internal: more pages than the pagemap entries list");
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, entry_left_));
    sink_.conn().send(p, n, n < len);
    p += n;
    len -= n;
    sent_ += n;
    entry_left_ -= n;
  }
}

void RemoteImage::close() {
  advance();
  if (entry_left_ != 0 || !pending_.empty())
    fail("internal: fewer pages than the pagemap entries list");
  if (record_) record_->close();
  closed_ = true;
  sink_.release(true);
}

}  // namespace

std::string sent_pagemap_name(uint64_t pid) {
  return fmt::format("{}{}.img", kSentPagemapPrefix, pid);
}

std::unique_ptr<dump::PageSink> remote_sink(const ClientOptions& o, const std::string& record_dir) {
  const bool shared = o.ps_socket >= 0;
  Connection conn = shared ? adopt_socket(o.ps_socket) : connect_to(o.address, o.port);
  if (o.tls.enabled) conn.start_tls(o.tls, false, o.tls.no_cn_verify ? "" : o.address);
  return std::make_unique<RemoteSink>(std::move(conn), shared, record_dir);
}

}  // namespace cryo::pageserver
