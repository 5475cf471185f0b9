#include "cli/check.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "kernel/syscalls.h"

namespace cryo::cli {
namespace {

// Each probe returns an empty string when the feature works, else why it does not.
using Probe = std::function<std::string()>;

std::string errno_text(const char* what) {
  return fmt::format("{}: {}", what, strerror(errno));
}

std::string probe_ptrace() {
  pid_t child = ::fork();
  if (child < 0) return errno_text("fork");
  if (child == 0) {
    for (;;) ::pause();
  }
  std::string err;
  if (ptrace(PTRACE_SEIZE, child, nullptr, nullptr) < 0) {
    err = errno_text("PTRACE_SEIZE");
  } else if (ptrace(PTRACE_INTERRUPT, child, nullptr, nullptr) < 0) {
    err = errno_text("PTRACE_INTERRUPT");
  } else {
    int st;
    ::waitpid(child, &st, __WALL);
    uint64_t mask;
    if (ptrace(PTRACE_GETSIGMASK, child, sizeof mask, &mask) < 0)
      err = errno_text("PTRACE_GETSIGMASK");
    int a = 1, b = 0;
    iovec l{&b, sizeof b}, r{&a, sizeof a};
    if (err.empty() && ::process_vm_readv(child, &l, 1, &r, 1, 0) != sizeof a)
      err = errno_text("process_vm_readv");
    if (err.empty() && kernel::kcmp(getpid(), child, kernel::kKcmpVm, 0, 0) < 0)
      err = errno_text("kcmp");
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  return err;
}

std::string probe_clone3_set_tid() {
  // Asking for PID 1 must fail with EEXIST when set_tid is supported, without a new task.
  pid_t one = 1;
  kernel::CloneArgs args{};
  args.exit_signal = SIGCHLD;
  args.set_tid = reinterpret_cast<uint64_t>(&one);
  args.set_tid_size = 1;
  long r = kernel::clone3(&args);
  if (r == 0) ::_exit(0);
  if (r > 0) {
    ::waitpid(static_cast<pid_t>(r), nullptr, 0);
    return "clone3 ignored set_tid";
  }
  if (errno == EEXIST) return "";
  return errno_text("clone3 with set_tid");
}

std::string probe_mm_map() {
  unsigned size = 0;
  if (::prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, &size, 0, 0) < 0)
    return errno_text("PR_SET_MM_MAP_SIZE");
  if (size != sizeof(kernel::PrctlMmMap)) return fmt::format("prctl_mm_map has size {}", size);
  return "";
}

std::string probe_proc() {
  for (const char* p :
       {"/proc/self/pagemap", "/proc/self/map_files", "/proc/self/task/", "/proc/self/ns/pid"})
    if (::access(p, R_OK) < 0) return errno_text(p);
  std::string children = fmt::format("/proc/self/task/{}/children", getpid());
  if (::access(children.c_str(), R_OK) < 0) return errno_text(children.c_str());
  return "";
}

std::string probe_soft_dirty() {
  // The soft-dirty bit (55) of a freshly written page is set only with CONFIG_MEM_SOFT_DIRTY.
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return errno_text("mmap");
  *static_cast<volatile char*>(p) = 1;
  Fd fd(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  uint64_t e = 0;
  ::pread(fd.get(), &e, 8, reinterpret_cast<uint64_t>(p) / 4096 * 8);
  ::munmap(p, 4096);
  if (e & (1ULL << 55)) return "";
  return "no soft-dirty bit in /proc/PID/pagemap (CONFIG_MEM_SOFT_DIRTY is off)";
}

std::string probe_uffd(uint64_t features) {
  Fd fd(static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)));
  if (!fd) return errno_text("userfaultfd");
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = features;
  if (::ioctl(fd.get(), UFFDIO_API, &api) < 0) return errno_text("UFFDIO_API");
  return "";
}

std::string probe_rseq_conf() {
  pid_t child = ::fork();
  if (child < 0) return errno_text("fork");
  if (child == 0) {
    for (;;) ::pause();
  }
  std::string err;
  kernel::RseqConfig c{};
  if (ptrace(PTRACE_SEIZE, child, nullptr, nullptr) < 0 ||
      ptrace(PTRACE_INTERRUPT, child, nullptr, nullptr) < 0) {
    err = errno_text("ptrace");
  } else {
    ::waitpid(child, nullptr, __WALL);
    if (ptrace(static_cast<__ptrace_request>(PTRACE_GET_RSEQ_CONFIGURATION), child, sizeof c, &c) <
        0)
      err = errno_text("PTRACE_GET_RSEQ_CONFIGURATION");
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  return err;
}

std::string probe_timens() {
  return ::access("/proc/self/ns/time", F_OK) == 0 ? "" : errno_text("/proc/self/ns/time");
}

struct Feature {
  const char* name;
  Probe probe;
  bool basic;  // needed by every dump and restore
};

std::vector<Feature> features() {
  return {
      {"ptrace", probe_ptrace, true},
      {"clone3_set_tid", probe_clone3_set_tid, true},
      {"prctl_mm_map", probe_mm_map, true},
      {"proc", probe_proc, true},
      {"mem_dirty_track", probe_soft_dirty, false},
      {"uffd", [] { return probe_uffd(0); }, false},
      {"uffd-noncoop",
       [] {
         return probe_uffd(UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP |
                           UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMOVE);
       },
       false},
      {"get_rseq_conf", probe_rseq_conf, false},
      {"timens", probe_timens, false},
  };
}

}  // namespace

int check(const Options& o) {
  auto all = features();
  if (!o.features.empty()) {
    int bad = 0;
    for (const auto& name : o.features) {
      const Feature* f = nullptr;
      for (const auto& x : all)
        if (name == x.name) f = &x;
      if (!f) {
        std::string known;
        for (const auto& x : all) known += std::string(known.empty() ? "" : ", ") + x.name;
        fail("unknown feature '{}': known features are {}", name, known);
      }
      std::string why = f->probe();
      if (why.empty()) {
        std::printf("%s is supported\n", f->name);
      } else {
        std::printf("%s is NOT supported: %s\n", f->name, why.c_str());
        bad++;
      }
    }
    return bad ? 1 : 0;
  }
  int bad = 0, warn = 0;
  for (const auto& f : all) {
    if (!f.basic && !o.check_all) continue;
    std::string why = f.probe();
    if (why.empty()) {
      log::info("{}: ok", f.name);
      continue;
    }
    if (f.basic) {
      std::fprintf(stderr, "Error: %s: %s\n", f.name, why.c_str());
      bad++;
    } else {
      std::fprintf(stderr, "Warn: %s: %s\n", f.name, why.c_str());
      warn++;
    }
  }
  if (bad) {
    std::fprintf(stderr, "cryo cannot checkpoint/restore on this system (%d problem(s) above)\n",
                 bad);
    return 1;
  }
  if (warn)
    std::printf(
        "Looks good but some kernel features are missing\nwhich, depending on your "
        "process tree, may cause\ndump or restore failure.\n");
  else
    std::printf("Looks good.\n");
  return 0;
}

}  // namespace cryo::cli
