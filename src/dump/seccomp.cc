#include "dump/seccomp.h"

#include <linux/filter.h>
#include <sys/ptrace.h>

#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "image/image.h"

namespace cryo::dump {
namespace {

constexpr int kGetFilter = 0x420c;          // PTRACE_SECCOMP_GET_FILTER
constexpr int kGetMetadata = 0x420d;        // PTRACE_SECCOMP_GET_METADATA
constexpr uint64_t kNewListener = 1u << 3;  // SECCOMP_FILTER_FLAG_NEW_LISTENER

}  // namespace

void SeccompTable::dump_thread(pid_t tid, int mode, thread_core_entry* thc) {
  if (mode == 0) {
    thc->set_seccomp_mode(disabled);
    return;
  }
  if (mode == 1) {
    thc->set_seccomp_mode(strict);
    return;
  }
  thc->set_seccomp_mode(filter);
  // Filter 0 is the newest; collect the chain oldest first.
  std::vector<seccomp_filter> chain;
  for (unsigned long idx = 0;; idx++) {
    long n = ptrace(static_cast<__ptrace_request>(kGetFilter), tid, idx, nullptr);
    if (n < 0 && errno == ENOENT) break;
    if (n < 0) fail_sys("cannot read seccomp filter {} of task {}", idx, tid);
    std::vector<sock_filter> prog(static_cast<size_t>(n));
    if (ptrace(static_cast<__ptrace_request>(kGetFilter), tid, idx, prog.data()) != n)
      fail_sys("cannot read seccomp filter {} of task {}", idx, tid);
    struct {
      uint64_t filter_off;
      uint64_t flags;
    } meta{idx, 0};
    if (ptrace(static_cast<__ptrace_request>(kGetMetadata), tid, sizeof meta, &meta) < 0)
      meta.flags = 0;
    if (meta.flags & kNewListener)
      fail("task {}: a seccomp filter with a user-notification listener is not supported yet", tid);
    seccomp_filter f;
    f.set_filter(prog.data(), prog.size() * sizeof(sock_filter));
    if (meta.flags) f.set_flags(static_cast<uint32_t>(meta.flags));
    chain.insert(chain.begin(), std::move(f));
  }
  // Threads usually share their chain: reuse entries already written.
  int prev = -1;
  for (auto& f : chain) {
    int found = -1;
    for (int i = 0; i < entry_.seccomp_filters_size(); i++) {
      const auto& e = entry_.seccomp_filters(i);
      int eprev = e.has_prev() ? static_cast<int>(e.prev()) : -1;
      if (e.filter() == f.filter() && eprev == prev && e.flags() == f.flags()) found = i;
    }
    if (found < 0) {
      if (prev >= 0) f.set_prev(static_cast<uint32_t>(prev));
      *entry_.add_seccomp_filters() = f;
      found = entry_.seccomp_filters_size() - 1;
    }
    prev = found;
  }
  if (prev >= 0) thc->set_seccomp_filter(static_cast<uint32_t>(prev));
  log::debug("task {}: {} seccomp filter(s)", tid, chain.size());
}

void SeccompTable::write(const std::string& dir) {
  if (entry_.seccomp_filters_size() == 0) return;
  image::write_one(dir, "seccomp.img", image::magic::kSeccomp, entry_);
}

}  // namespace cryo::dump
