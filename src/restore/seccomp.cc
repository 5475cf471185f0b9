#include "restore/seccomp.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include <span>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "infect/scratch_arena.h"
#include "restore/tree.h"

namespace cryo::restore {

void restore_seccomp(RemoteTask& rt, const thread_core_entry& thc, const seccomp_entry& filters) {
  if (!thc.has_seccomp_mode() || thc.seccomp_mode() == disabled) return;
  const pid_t tid = rt.tid();
  if (ptrace(PTRACE_SETOPTIONS, tid, nullptr, kTraceOptions | PTRACE_O_SUSPEND_SECCOMP) < 0)
    fail_sys("task {}: cannot suspend seccomp while restoring it", tid);
  if (thc.seccomp_mode() == strict) {
    rt.check("prctl(PR_SET_SECCOMP, strict)", SYS_prctl, PR_SET_SECCOMP, SECCOMP_MODE_STRICT);
    return;
  }
  // The chain from the thread's newest filter back to its first; installed oldest first.
  std::vector<const seccomp_filter*> chain;
  if (!thc.has_seccomp_filter())
    fail("image core-{}.img: seccomp filter mode without filters", tid);
  for (long i = thc.seccomp_filter(); i >= 0;) {
    if (i >= filters.seccomp_filters_size() || chain.size() > 1000)
      fail("image seccomp.img is corrupt: filter {} of task {} is missing", i, tid);
    const seccomp_filter& f = filters.seccomp_filters(static_cast<int>(i));
    chain.insert(chain.begin(), &f);
    i = f.has_prev() ? static_cast<long>(f.prev()) : -1;
  }
  for (const seccomp_filter* f : chain) {
    if (f->filter().size() % sizeof(sock_filter) || f->filter().size() > 60000)
      fail("image seccomp.img is corrupt: a filter of {} bytes", f->filter().size());
    ScratchArena arena(rt);
    auto insns = arena.put_array(std::span<const char>(f->filter()));
    const sock_fprog prog{static_cast<uint16_t>(f->filter().size() / sizeof(sock_filter)),
                          insns.cast<sock_filter>().as_field()};
    // Every thread gets its own copy of the chain: no TSYNC; listeners were refused at dump.
    const uint64_t flags =
        f->flags() & ~uint64_t{SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_NEW_LISTENER};
    rt.check("seccomp(SECCOMP_SET_MODE_FILTER)", SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags,
             arena.put(prog));
  }
  log::debug("task {}: {} seccomp filter(s) installed", tid, chain.size());
}

}  // namespace cryo::restore
