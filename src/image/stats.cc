#include "image/stats.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>

#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include "base/error.h"
#include "base/own_file.h"

namespace cryo::image {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// The set fields of `m`, in field-number order, as JSON members.
void json_of(const Message& m, std::string* out, int indent) {
  const auto* d = m.GetDescriptor();
  const auto* r = m.GetReflection();
  std::string pad(static_cast<size_t>(indent) + 2, ' ');
  *out += "{";
  bool first = true;
  for (int i = 0; i < d->field_count(); i++) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_repeated() || !r->HasField(m, f)) continue;
    *out += first ? "\n" : ",\n";
    first = false;
    *out += fmt::format("{}\"{}\": ", pad, f->name());
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_UINT32:
        *out += std::to_string(r->GetUInt32(m, f));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        *out += std::to_string(r->GetUInt64(m, f));
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        *out += std::to_string(r->GetInt32(m, f));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        *out += std::to_string(r->GetInt64(m, f));
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        json_of(r->GetMessage(m, f), out, indent + 2);
        break;
      default:
        fail("internal: stats field {} has a type JSON output does not know", f->name());
    }
  }
  *out += first ? "}" : fmt::format("\n{}}}", std::string(static_cast<size_t>(indent), ' '));
}

}  // namespace

stats_entry empty_dump_stats() {
  stats_entry s;
  auto* d = s.mutable_dump();
  d->set_freezing_time(0);
  d->set_frozen_time(0);
  d->set_memdump_time(0);
  d->set_memwrite_time(0);
  d->set_pages_scanned(0);
  d->set_pages_skipped_parent(0);
  d->set_pages_written(0);
  d->set_irmap_resolve(0);
  d->set_pages_lazy(0);
  d->set_page_pipes(0);
  d->set_page_pipe_bufs(0);
  d->set_shpages_scanned(0);
  d->set_shpages_skipped_parent(0);
  d->set_shpages_written(0);
  return s;
}

stats_entry empty_restore_stats() {
  stats_entry s;
  auto* r = s.mutable_restore();
  r->set_pages_compared(0);
  r->set_pages_skipped_cow(0);
  r->set_forking_time(0);
  r->set_restore_time(0);
  r->set_pages_restored(0);
  return s;
}

std::string stats_text(const stats_entry& s) {
  // Counts are printed in decimal and in hex, times in microseconds, as CRIU does.
  auto count = [](const char* what, uint64_t n) {
    return fmt::format("{}: {} ({:#x})\n", what, n, n);
  };
  auto time = [](const char* what, uint32_t us) { return fmt::format("{}: {} us\n", what, us); };
  std::string t;
  if (s.has_dump()) {
    const auto& d = s.dump();
    t += "Displaying dump stats:\n";
    t += time("Freezing time", d.freezing_time());
    t += time("Frozen time", d.frozen_time());
    t += time("Memory dump time", d.memdump_time());
    t += time("Memory write time", d.memwrite_time());
    if (d.has_irmap_resolve()) t += time("IRMAP resolve time", d.irmap_resolve());
    t += count("Memory pages scanned", d.pages_scanned());
    t += count("Memory pages skipped from parent", d.pages_skipped_parent());
    t += count("Memory pages written", d.pages_written());
    t += count("Lazy memory pages", d.pages_lazy());
  } else if (s.has_restore()) {
    const auto& r = s.restore();
    t += "Displaying restore stats:\n";
    t += count("Pages compared", r.pages_compared());
    t += count("Pages skipped COW", r.pages_skipped_cow());
    if (r.has_pages_restored()) t += count("Pages restored", r.pages_restored());
    t += time("Restore time", r.restore_time());
    t += time("Forking time", r.forking_time());
  }
  return t;
}

std::string stats_json(const stats_entry& s) {
  std::string out;
  json_of(s, &out, 0);
  return out + "\n";
}

StatsJsonFile::StatsJsonFile(const std::string& path) : path_(path) {
  if (path_.empty()) return;
  fd_ = open_own_file(path_, "--stats-json file");
  struct stat st;
  if (::fstat(fd_.get(), &st) < 0) fail_sys("cannot stat --stats-json file {}", path_);
  dev_ = st.st_dev;
  ino_ = st.st_ino;
}

StatsJsonFile::~StatsJsonFile() {
  if (!fd_) return;
  // Never written: the action failed. Only the file cryo opened goes (it may be replaced).
  struct stat now;
  if (::lstat(path_.c_str(), &now) == 0 && now.st_dev == dev_ && now.st_ino == ino_)
    ::unlink(path_.c_str());
}

void StatsJsonFile::write(const stats_entry& s) {
  if (path_.empty() || !fd_) return;
  std::string j = stats_json(s);
  size_t off = 0;
  while (off < j.size()) {
    ssize_t n = ::write(fd_.get(), j.data() + off, j.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail_sys("cannot write --stats-json file {}", path_);
    off += static_cast<size_t>(n);
  }
  if (::close(fd_.release()) < 0) fail_sys("cannot write --stats-json file {}", path_);
}

}  // namespace cryo::image
