#include "cli/check.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/filter.h>
#include <linux/inet_diag.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/seccomp.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <linux/userfaultfd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "kernel/syscalls.h"
#include "kernel/userfaultfd.h"
#include "net/network_lock.h"

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

// Write tracking as cryo's dumps do it (dump/mem_track.h), on two pages of our own: an
// asynchronous write-protecting userfaultfd over them, one written (never touched before),
// then PAGEMAP_SCAN must find exactly that page, and nothing once it has protected it again.
std::string probe_uffd_wp_tracking() {
  Fd fd(static_cast<int>(
      ::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | kernel::kUffdUserModeOnly)));
  if (!fd) return errno_text("userfaultfd");
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = kernel::kUffdFeatureWpAsync | kernel::kUffdFeatureWpUnpopulated;
  if (::ioctl(fd.get(), UFFDIO_API, &api) < 0)
    return errno_text("UFFDIO_API with WP_ASYNC and WP_UNPOPULATED");
  constexpr size_t kLen = 2 * 4096;
  void* m = ::mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return errno_text("mmap");
  std::unique_ptr<void, std::function<void(void*)>> unmap(m, [](void* p) { ::munmap(p, kLen); });
  auto* p = static_cast<volatile char*>(m);
  p[0] = 1;
  const auto start = reinterpret_cast<uint64_t>(m);
  uffdio_register reg{};
  reg.range = {start, kLen};
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  if (::ioctl(fd.get(), UFFDIO_REGISTER, &reg) < 0) return errno_text("UFFDIO_REGISTER");
  uffdio_writeprotect wp{};
  wp.range = reg.range;
  wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
  if (::ioctl(fd.get(), UFFDIO_WRITEPROTECT, &wp) < 0) return errno_text("UFFDIO_WRITEPROTECT");
  p[4096] = 1;
  Fd pm(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!pm) return errno_text("/proc/self/pagemap");
  auto scan = [&](kernel::PageRegion* out) -> long {
    kernel::PmScanArg a{};
    a.size = sizeof a;
    a.flags = kernel::kPmScanWpMatching | kernel::kPmScanCheckWpAsync;
    a.start = start;
    a.end = start + kLen;
    a.vec = reinterpret_cast<uint64_t>(out);
    a.vec_len = 2;
    a.category_mask = kernel::kPageIsWritten;
    a.return_mask = kernel::kPageIsWritten;
    return ::ioctl(pm.get(), kernel::kPagemapScan, &a);
  };
  kernel::PageRegion r[2] = {};
  long n = scan(r);
  if (n < 0) return errno_text("PAGEMAP_SCAN");
  if (n != 1 || r[0].start != start + 4096 || r[0].end != start + kLen)
    return "PAGEMAP_SCAN does not report the written page alone";
  if (scan(r) != 0) return "PAGEMAP_SCAN did not write-protect the page again";
  return "";
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

// --- probes of CRIU's feature names: each asks the kernel itself ---

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string fdinfo_of(int fd) {
  return read_text(fmt::format("/proc/self/fdinfo/{}", fd));
}

// Runs fn in a child process (for probes that change the process or its namespaces); the
// child's exit status 0 means "has it", any other is explained by `why`.
std::string in_child(const std::function<int()>& fn, const char* why) {
  std::fflush(nullptr);
  pid_t child = ::fork();
  if (child < 0) return errno_text("fork");
  if (child == 0) ::_exit(fn());
  int st = 0;
  ::waitpid(child, &st, 0);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "" : why;
}

// Sends one netlink request and reads the first answer: 0 when the kernel answered with
// data or an ACK, else the negative errno it answered with.
int nl_request(int proto, nlmsghdr* req) {
  Fd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto));
  if (!fd) return -errno;
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (::sendto(fd.get(), req, req->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0)
    return -errno;
  alignas(nlmsghdr) char buf[16384];
  ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
  if (n < static_cast<ssize_t>(sizeof(nlmsghdr))) return -EIO;
  auto* h = reinterpret_cast<nlmsghdr*>(buf);
  if (h->nlmsg_type == NLMSG_ERROR) return reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
  return 0;
}

void add_attr(nlmsghdr* h, uint16_t type, const void* data, uint16_t len) {
  auto* a = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(h) + NLMSG_ALIGN(h->nlmsg_len));
  a->rta_type = type;
  a->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
  std::memcpy(RTA_DATA(a), data, len);
  h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

std::string probe_mnt_id() {
  Fd fd(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_text("/proc/self/exe");
  return fdinfo_of(fd.get()).find("mnt_id:") != std::string::npos ? ""
                                                                  : "no mnt_id in /proc/PID/fdinfo";
}

std::string probe_aio_remap() {
  // The ring of an AIO context moved with mremap must stay usable (its ID follows it).
  return in_child(
      [] {
        aio_context_t ctx = 0;
        if (::syscall(SYS_io_setup, 16, &ctx) < 0) return 1;
        size_t len = 0;
        std::istringstream maps(read_text("/proc/self/maps"));
        std::string line;
        while (std::getline(maps, line))
          if (line.find("/[aio]") != std::string::npos) {
            unsigned long a, b;
            if (std::sscanf(line.c_str(), "%lx-%lx", &a, &b) == 2 && a == ctx) len = b - a;
          }
        if (!len) return 2;
        void* to = ::mmap(nullptr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (to == MAP_FAILED) return 3;
        void* moved =
            ::mremap(reinterpret_cast<void*>(ctx), len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
        if (moved == MAP_FAILED) return 4;
        return ::syscall(SYS_io_destroy, reinterpret_cast<aio_context_t>(moved)) == 0 ? 0 : 5;
      },
      "an AIO ring cannot be moved with mremap");
}

std::string probe_timerfd() {
  Fd fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC));
  if (!fd) return errno_text("timerfd_create");
  itimerspec its{};
  its.it_value.tv_sec = 1000;
  ::timerfd_settime(fd.get(), 0, &its, nullptr);
  if (fdinfo_of(fd.get()).find("it_value:") == std::string::npos)
    return "no timer state in a timerfd's fdinfo";
  uint64_t ticks = 1;
  if (::ioctl(fd.get(), _IOW('T', 0, uint64_t), &ticks) < 0) return errno_text("TFD_IOC_SET_TICKS");
  return "";
}

std::string probe_tun() {
  Fd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  return fd ? "" : errno_text("/dev/net/tun");
}

std::string probe_tun_ns() {
  Fd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!fd) return errno_text("/dev/net/tun");
  // TUNGETDEVNETNS on a tun file with no device: EBADFD where the kernel knows the request.
  if (::ioctl(fd.get(), _IO('T', 227)) < 0 && errno == EBADFD) return "";
  return errno_text("TUNGETDEVNETNS");
}

std::string probe_userns() {
  if (::access("/proc/self/ns/user", F_OK) < 0) return errno_text("/proc/self/ns/user");
  return probe_mm_map();
}

std::string probe_fdinfo_lock() {
  Fd fd(::open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!fd) return errno_text("O_TMPFILE in /tmp");
  if (::flock(fd.get(), LOCK_SH) < 0) return errno_text("flock");
  return fdinfo_of(fd.get()).find("lock:") != std::string::npos ? ""
                                                                : "no locks in /proc/PID/fdinfo";
}

// Seizes a paused child that may first run `setup`, stops it, and runs `probe` on it.
std::string with_stopped_child(const std::function<void()>& setup,
                               const std::function<std::string(pid_t)>& probe) {
  std::fflush(nullptr);
  pid_t child = ::fork();
  if (child < 0) return errno_text("fork");
  if (child == 0) {
    setup();
    for (;;) ::pause();
  }
  std::string err;
  ::usleep(10000);  // let the child run its setup first
  if (ptrace(PTRACE_SEIZE, child, nullptr, nullptr) < 0 ||
      ptrace(PTRACE_INTERRUPT, child, nullptr, nullptr) < 0) {
    err = errno_text("ptrace");
  } else {
    ::waitpid(child, nullptr, __WALL);
    err = probe(child);
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  return err;
}

std::string probe_seccomp_suspend() {
  return with_stopped_child(
      [] {},
      [](pid_t c) -> std::string {
        if (ptrace(PTRACE_SETOPTIONS, c, nullptr, PTRACE_O_SUSPEND_SECCOMP) < 0)
          return errno_text("PTRACE_O_SUSPEND_SECCOMP");
        return "";
      });
}

std::string probe_seccomp_filters() {
  return with_stopped_child(
      [] {
        sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
        sock_fprog prog{1, &allow};
        ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
      },
      [](pid_t c) -> std::string {
        long n = ptrace(static_cast<__ptrace_request>(0x420c), c, 0, nullptr);
        if (n <= 0) return errno_text("PTRACE_SECCOMP_GET_FILTER");
        return "";
      });
}

std::string probe_breakpoints() {
  return with_stopped_child(
      [] {},
      [](pid_t c) -> std::string {
        errno = 0;
        ptrace(PTRACE_PEEKUSER, c, offsetof(struct user, u_debugreg[7]), nullptr);
        return errno ? errno_text("PTRACE_PEEKUSER of the debug registers") : "";
      });
}

std::string probe_loginuid() {
  // Writing a task's loginuid back must work for a restore to set it: try in a child.
  return in_child(
      [] {
        std::string v = read_text("/proc/self/loginuid");
        Fd fd(::open("/proc/self/loginuid", O_WRONLY | O_CLOEXEC));
        if (!fd || v.empty()) return 1;
        return ::write(fd.get(), v.data(), v.size()) == static_cast<ssize_t>(v.size()) ? 0 : 2;
      },
      "/proc/self/loginuid cannot be written (CONFIG_AUDITSYSCALL off, or immutable)");
}

std::string probe_file(const char* path) {
  return ::access(path, F_OK) == 0 ? "" : errno_text(path);
}

std::string probe_filesystem(const char* fs) {
  std::istringstream in(read_text("/proc/filesystems"));
  std::string line;
  while (std::getline(in, line)) {
    auto tab = line.rfind('\t');
    if (tab != std::string::npos && line.substr(tab + 1) == fs) return "";
  }
  return fmt::format("no {} in /proc/filesystems", fs);
}

std::string probe_tcp_half_closed() {
  // TCP_REPAIR on a loopback connection whose sending side is shut down.
  Fd l(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (!l || ::bind(l.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 ||
      ::listen(l.get(), 1) < 0 || ::getsockname(l.get(), reinterpret_cast<sockaddr*>(&a), &len) < 0)
    return errno_text("loopback TCP listener");
  Fd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!c || ::connect(c.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0)
    return errno_text("loopback TCP connect");
  Fd s(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!s) return errno_text("accept");
  ::shutdown(c.get(), SHUT_WR);
  int on = 1;
  if (::setsockopt(c.get(), SOL_TCP, TCP_REPAIR, &on, sizeof on) < 0)
    return errno_text("TCP_REPAIR on a half-closed socket");
  int off = 0;  // TCP_REPAIR_OFF: close without a reset sent on the wire
  ::setsockopt(c.get(), SOL_TCP, TCP_REPAIR, &off, sizeof off);
  return "";
}

std::string probe_compat_cr() {
  if (::access("/proc/sys/abi/vsyscall32", F_OK) < 0)
    return "no 32-bit emulation (CONFIG_IA32_EMULATION)";
  // ARCH_MAP_VDSO_32 answers EEXIST when a vDSO is already there and the request is known.
  return in_child(
      [] { return ::syscall(SYS_arch_prctl, 0x2002, 0x10000000UL) < 0 && errno == EEXIST ? 0 : 1; },
      "no ARCH_MAP_VDSO_32");
}

std::string probe_can_map_vdso() {
  return in_child(
      [] { return ::syscall(SYS_arch_prctl, 0x2003, 0x10000000UL) < 0 && errno == EEXIST ? 0 : 1; },
      "no ARCH_MAP_VDSO_64");
}

std::string probe_sk_ns() {
  Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  Fd ns(::ioctl(s.get(), SIOCGSKNS));
  return ns ? "" : errno_text("SIOCGSKNS");
}

std::string probe_sk_unix_file() {
  // SIOCUNIXFILE on a socket with no file: ENOENT where the kernel knows the request.
  Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::ioctl(s.get(), SIOCPROTOPRIVATE) < 0 && errno == ENOENT) return "";
  return errno_text("SIOCUNIXFILE");
}

std::string probe_net_diag_raw() {
  struct {
    nlmsghdr h;
    inet_diag_req_v2 r;
  } req{};
  req.h.nlmsg_len = sizeof req;
  req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.r.sdiag_family = AF_INET;
  req.r.sdiag_protocol = IPPROTO_RAW;
  req.r.idiag_states = ~0U;
  int e = nl_request(NETLINK_SOCK_DIAG, &req.h);
  return e == 0 ? "" : fmt::format("sock_diag of raw sockets: {}", strerror(-e));
}

std::string probe_nsid() {
  struct {
    nlmsghdr h;
    rtgenmsg g;
    char attrs[64];
  } req{};
  req.h.nlmsg_len = NLMSG_LENGTH(sizeof req.g);
  req.h.nlmsg_type = RTM_GETNSID;
  req.h.nlmsg_flags = NLM_F_REQUEST;
  req.g.rtgen_family = AF_UNSPEC;
  Fd ns(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  uint32_t fd = static_cast<uint32_t>(ns.get());
  add_attr(&req.h, 3 /* NETNSA_FD */, &fd, sizeof fd);
  int e = nl_request(NETLINK_ROUTE, &req.h);
  return e == 0 ? "" : fmt::format("RTM_GETNSID: {}", strerror(-e));
}

std::string probe_kcmp_epoll() {
  Fd ep(::epoll_create1(EPOLL_CLOEXEC));
  Fd ev(::eventfd(0, EFD_CLOEXEC));
  epoll_event e{};
  e.events = EPOLLIN;
  if (!ep || !ev || ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, ev.get(), &e) < 0)
    return errno_text("epoll");
  // The file registered in epoll ep under ev's number is ev itself.
  kernel::KcmpEpollSlot slot{static_cast<uint32_t>(ep.get()), static_cast<uint32_t>(ev.get()), 0};
  if (kernel::kcmp(getpid(), getpid(), kernel::kKcmpEpollTfd, ev.get(),
                   reinterpret_cast<unsigned long>(&slot)) != 0)
    return errno_text("KCMP_EPOLL_TFD");
  return "";
}

std::string probe_newifindex() {
  // IFLA_NEW_IFINDEX = -1 is refused by the kernels that know the attribute (ERANGE/EINVAL);
  // others ignore it. Tried in a child's own network namespace.
  return in_child(
      [] {
        if (::unshare(CLONE_NEWNET) < 0) return 1;
        struct {
          nlmsghdr h;
          ifinfomsg i;
          char attrs[64];
        } req{};
        req.h.nlmsg_len = NLMSG_LENGTH(sizeof req.i);
        req.h.nlmsg_type = RTM_NEWLINK;
        req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
        req.i.ifi_index = 1;  // lo
        int32_t idx = -1;
        add_attr(&req.h, 49 /* IFLA_NEW_IFINDEX */, &idx, sizeof idx);
        int e = nl_request(NETLINK_ROUTE, &req.h);
        return e == -ERANGE || e == -EINVAL ? 0 : 2;
      },
      "no IFLA_NEW_IFINDEX");
}

std::string probe_nftables() {
  struct {
    nlmsghdr h;
    nfgenmsg g;
  } req{};
  req.h.nlmsg_len = sizeof req;
  req.h.nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN;
  req.h.nlmsg_flags = NLM_F_REQUEST;
  req.g.nfgen_family = AF_UNSPEC;
  req.g.version = NFNETLINK_V0;
  int e = nl_request(NETLINK_NETFILTER, &req.h);
  return e == 0 ? "" : fmt::format("nf_tables: {}", strerror(-e));
}

std::string probe_ipt_legacy() {
  for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/local/sbin/", "/usr/bin/"})
    if (::access((std::string(dir) + "iptables-legacy-restore").c_str(), X_OK) == 0) return "";
  return "no iptables-legacy-restore";
}

std::string probe_pidfd_store() {
  Fd p(kernel::pidfd_open(getpid()));
  if (!p) return errno_text("pidfd_open");
  Fd f(kernel::pidfd_getfd(p.get(), p.get()));
  return f ? "" : errno_text("pidfd_getfd");
}

std::string probe_ns_pid() {
  return read_text("/proc/self/status").find("\nNSpid:") != std::string::npos
             ? ""
             : "no NSpid in /proc/PID/status";
}

std::string probe_sockopt_buf_lock() {
  Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  int v = 0;
  socklen_t len = sizeof v;
  return ::getsockopt(s.get(), SOL_SOCKET, 72 /* SO_BUF_LOCK */, &v, &len) == 0
             ? ""
             : errno_text("SO_BUF_LOCK");
}

std::string probe_memfd_hugetlb() {
  Fd f(static_cast<int>(::syscall(SYS_memfd_create, "cryo-check", MFD_CLOEXEC | MFD_HUGETLB)));
  return f ? "" : errno_text("memfd_create(MFD_HUGETLB)");
}

std::string probe_move_mount_set_group() {
  // Flags are checked before paths: ENOENT means MOVE_MOUNT_SET_GROUP is known.
  if (::syscall(SYS_move_mount, AT_FDCWD, "/nonexistent-cryo-check", AT_FDCWD,
                "/nonexistent-cryo-check", 0x100) < 0 &&
      errno == ENOENT)
    return "";
  return errno_text("move_mount(MOVE_MOUNT_SET_GROUP)");
}

std::string probe_openat2() {
  struct {
    uint64_t flags, mode, resolve;
  } how{O_PATH | O_CLOEXEC, 0, 0};
  Fd f(static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how)));
  return f ? "" : errno_text("openat2");
}

std::string probe_ipv6_freebind() {
  Fd s(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) return errno_text("IPv6 socket");
  int on = 1;
  return ::setsockopt(s.get(), IPPROTO_IPV6, 78 /* IPV6_FREEBIND */, &on, sizeof on) == 0
             ? ""
             : errno_text("IPV6_FREEBIND");
}

// PAGEMAP_SCAN (Linux 6.7) on a page of our own, asking for the given categories.
std::string probe_pagemap_scan(uint64_t categories, const char* what) {
  struct {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted,
        category_mask, category_anyof_mask, return_mask;
  } arg{};
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return errno_text("mmap");
  arg.size = sizeof arg;
  arg.start = reinterpret_cast<uint64_t>(p);
  arg.end = arg.start + 4096;
  arg.category_anyof_mask = categories;
  arg.return_mask = categories;
  Fd fd(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  long r = ::ioctl(fd.get(), _IOWR('f', 16, decltype(arg)), &arg);
  int e = errno;
  ::munmap(p, 4096);
  errno = e;
  return r >= 0 ? "" : errno_text(what);
}

std::string probe_timer_cr_ids() {
  // PR_TIMER_CREATE_RESTORE_IDS (77), PR_TIMER_CREATE_RESTORE_IDS_GET (2): Linux 6.16.
  return ::prctl(77, 2, 0, 0, 0) >= 0 ? "" : errno_text("PR_TIMER_CREATE_RESTORE_IDS");
}

std::string probe_overlayfs_maps() {
  if (std::string why = probe_filesystem("overlay"); !why.empty()) return why;
  // A file mapped from an overlay mount must show the overlay's path in map_files.
  char dir[] = "/tmp/cryo-check-ovl-XXXXXX";
  if (!::mkdtemp(dir)) return errno_text("mkdtemp");
  std::string base = dir;
  std::string why = in_child(
      [&base] {
        if (::unshare(CLONE_NEWNS) < 0 ||
            ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0 ||
            ::mount("tmpfs", base.c_str(), "tmpfs", 0, nullptr) < 0)
          return 1;
        for (const char* d : {"/l", "/u", "/w", "/m"}) ::mkdir((base + d).c_str(), 0700);
        Fd f(::open((base + "/l/f").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
        if (!f || ::write(f.get(), "x", 1) != 1) return 2;
        std::string opts = fmt::format("lowerdir={0}/l,upperdir={0}/u,workdir={0}/w", base);
        if (::mount("overlay", (base + "/m").c_str(), "overlay", 0, opts.c_str()) < 0) return 3;
        Fd m(::open((base + "/m/f").c_str(), O_RDONLY | O_CLOEXEC));
        void* p = m ? ::mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE, m.get(), 0) : MAP_FAILED;
        if (p == MAP_FAILED) return 4;
        auto a = reinterpret_cast<unsigned long>(p);
        char link[4096] = {};
        std::string mf = fmt::format("/proc/self/map_files/{:x}-{:x}", a, a + 4096);
        if (::readlink(mf.c_str(), link, sizeof link - 1) < 0) return 5;
        return std::string(link) == base + "/m/f" ? 0 : 6;
      },
      "map_files of an overlayfs file does not show the overlay's path");
  ::rmdir(dir);
  return why;
}

struct Feature {
  const char* name;
  Probe kernel;            // empty string: the kernel has it
  const char* cryo_lacks;  // nullptr: cryo checkpoints and restores what it gates
  bool experimental;       // CRIU checks it with --experimental, else with --extra
};

// CRIU 4.2's feature names, in CRIU's order.
std::vector<Feature> criu_features() {
  constexpr uint64_t kPageIsPresent = 1 << 3, kPageIsGuard = 1 << 8;
  return {
      {"mnt_id", probe_mnt_id, nullptr, false},
      // Soft-dirty is not used: cryo tracks with userfaultfd write-protection only.
      {"mem_dirty_track", probe_uffd_wp_tracking, nullptr, false},
      {"aio_remap", probe_aio_remap, "cryo does not dump AIO rings yet", false},
      {"timerfd", probe_timerfd, nullptr, false},
      {"tun", probe_tun, "cryo does not dump tun devices yet", false},
      {"tun_ns", probe_tun_ns, "cryo does not dump tun devices yet", false},
      {"userns", probe_userns, "cryo does not dump user namespaces yet", false},
      {"fdinfo_lock", probe_fdinfo_lock, nullptr, false},
      {"seccomp_suspend", probe_seccomp_suspend, nullptr, false},
      {"seccomp_filters", probe_seccomp_filters, nullptr, false},
      {"loginuid", probe_loginuid, "cryo does not restore login uids yet", false},
      {"cgroupns", [] { return probe_file("/proc/self/ns/cgroup"); },
       "cryo does not dump cgroup namespaces yet", false},
      {"autofs", [] { return probe_filesystem("autofs"); }, "cryo does not dump autofs mounts yet",
       true},
      {"tcp_half_closed", probe_tcp_half_closed, nullptr, false},
      {"compat_cr", probe_compat_cr, "cryo does not dump 32-bit tasks yet", true},
      {"uffd", [] { return probe_uffd(0); }, nullptr, false},
      {"uffd-noncoop",
       [] {
         return probe_uffd(UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP |
                           UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMOVE);
       },
       nullptr, false},
      {"can_map_vdso", probe_can_map_vdso,
       "cryo moves its own vDSO into place with mremap and does not map one with "
       "ARCH_MAP_VDSO",
       false},
      {"sk_ns", probe_sk_ns, "cryo does not dump sockets of other network namespaces yet", false},
      {"sk_unix_file", probe_sk_unix_file,
       "cryo does not use SIOCUNIXFILE to find the files of bound unix sockets yet", false},
      {"net_diag_raw", probe_net_diag_raw, "cryo does not dump raw sockets yet", false},
      {"nsid", probe_nsid, "cryo does not dump network namespaces yet", false},
      {"link_nsid", probe_nsid, "cryo does not dump network namespaces yet", false},
      {"kcmp_epoll", probe_kcmp_epoll, nullptr, false},
      {"timens", probe_timens, nullptr, false},
      {"external_net_ns", [] { return probe_file("/proc/self/ns/net"); }, nullptr, false},
      {"clone3_set_tid", probe_clone3_set_tid, nullptr, false},
      {"newifindex", probe_newifindex, "cryo does not restore network devices yet", false},
      {"nftables", probe_nftables, "cryo does not dump nftables rules yet", false},
      {"has_ipt_legacy", probe_ipt_legacy, "cryo does not dump iptables rules yet", false},
      {"pidfd_store", probe_pidfd_store,
       "cryo does not take an RPC pidfd store socket (pidfd_store_sk) yet", false},
      {"ns_pid", probe_ns_pid, nullptr, false},
      {"apparmor_stacking",
       [] { return probe_file("/sys/kernel/security/apparmor/features/domain/stack"); },
       "cryo does not restore AppArmor profiles yet", false},
      {"network_lock_nftables", net::probe_nftables_lock, nullptr, false},
      {"sockopt_buf_lock", probe_sockopt_buf_lock, "cryo does not save SO_BUF_LOCK yet", false},
      {"memfd_hugetlb", probe_memfd_hugetlb, "cryo does not dump hugetlb memfds yet", false},
      {"move_mount_set_group", probe_move_mount_set_group,
       "cryo restores peer groups of mounts by bind mounts, without MOVE_MOUNT_SET_GROUP", false},
      {"openat2", probe_openat2, "cryo does not use openat2 yet", false},
      {"get_rseq_conf", probe_rseq_conf, nullptr, false},
      {"ipv6_freebind", probe_ipv6_freebind,
       "cryo's restore of IPV6_FREEBIND on IPv6 sockets is untested", false},
      {"pagemap_scan", [] { return probe_pagemap_scan(kPageIsPresent, "PAGEMAP_SCAN"); }, nullptr,
       false},
      {"timer_cr_ids", probe_timer_cr_ids, nullptr, false},
      {"overlayfs_maps", probe_overlayfs_maps, "cryo does not check file mappings on overlayfs yet",
       false},
      {"breakpoints", probe_breakpoints,
       "cryo does not save hardware breakpoints (debug registers) yet", false},
      {"pagemap_scan_guard_pages",
       [] { return probe_pagemap_scan(kPageIsGuard, "PAGEMAP_SCAN of guard pages"); },
       "cryo does not dump guard pages (MADV_GUARD_INSTALL) yet", false},
  };
}

// Why a feature is not supported, or "" when it is.
std::string why_not(const Feature& f) {
  std::string kernel = f.kernel();
  if (kernel.empty() && !f.cryo_lacks) return "";
  if (kernel.empty()) return fmt::format("the kernel has it, but {}", f.cryo_lacks);
  if (!f.cryo_lacks) return fmt::format("the kernel lacks it ({})", kernel);
  return fmt::format("the kernel lacks it ({}), and {}", kernel, f.cryo_lacks);
}

// The checks plain `cryo check` makes: what every dump and restore needs.
struct Basic {
  const char* name;
  Probe probe;
};
std::vector<Basic> basics() {
  return {
      {"ptrace", probe_ptrace},
      {"clone3_set_tid", probe_clone3_set_tid},
      {"prctl_mm_map", probe_mm_map},
      {"proc", probe_proc},
  };
}

}  // namespace

std::vector<std::string> feature_names() {
  std::vector<std::string> r;
  for (const auto& f : criu_features()) r.push_back(f.name);
  return r;
}

std::string basics_problem() {
  for (const auto& b : basics()) {
    std::string why = b.probe();
    if (!why.empty()) return fmt::format("{}: {}", b.name, why);
    log::info("{}: ok", b.name);
  }
  return "";
}

std::string feature_problem(const std::string& name) {
  for (const auto& f : criu_features())
    if (name == f.name) return why_not(f);
  fail("Unknown feature {}", name);
}

int check(const Options& o) {
  auto all = criu_features();
  if (!o.features.empty()) {
    // As CRIU: "NAME is supported" on stdout and 0, else the reason and 1.
    std::vector<const Feature*> asked;
    for (const auto& name : o.features) {
      const Feature* f = nullptr;
      for (const auto& x : all)
        if (name == x.name) f = &x;
      if (!f) fail("Unknown feature {}: 'cryo check --all' lists the {} names", name, all.size());
      asked.push_back(f);
    }
    int bad = 0;
    for (const Feature* f : asked) {
      std::string why = why_not(*f);
      if (why.empty()) {
        std::printf("%s is supported\n", f->name);
      } else {
        std::fflush(stdout);
        std::fprintf(stderr, "%s is not supported: %s\n", f->name, why.c_str());
        bad++;
      }
    }
    return bad ? 1 : 0;
  }
  if (std::string why = basics_problem(); !why.empty()) {
    std::fprintf(stderr, "Error: %s\n", why.c_str());
    std::fprintf(stderr, "Does not look good: cryo cannot checkpoint/restore on this system\n");
    return 1;
  }
  int missing = 0;
  if (o.check_extra || o.check_experimental) {
    for (const auto& f : all) {
      if (f.experimental ? !o.check_experimental : !o.check_extra) continue;
      std::string why = why_not(f);
      if (why.empty()) {
        std::printf("%s: supported\n", f.name);
      } else {
        std::printf("%s: not supported: %s\n", f.name, why.c_str());
        missing++;
      }
    }
  }
  // CRIU's closing words and exit status: 1 when an optional feature is missing.
  if (missing)
    std::printf(
        "Looks good but some kernel features are missing\nwhich, depending on your "
        "process tree, may cause\ndump or restore failure.\n");
  else
    std::printf("Looks good.\n");
  return missing ? 1 : 0;
}

}  // namespace cryo::cli
