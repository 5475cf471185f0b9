#include "rpc/rpc.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>

#include "base/deadline.h"
#include "base/error.h"
#include "base/fd.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "base/own_file.h"
#include "cli/check.h"
#include "rpc.pb.h"
#include "rpc/opts.h"

namespace cryo::rpc {
namespace {

// How long a dump or restore waits for the client's answer to a notification: the tree is
// frozen (or half-built) meanwhile.
constexpr auto kNotifyTimeout = std::chrono::seconds(60);

// A failure of the RPC layer itself, with the errno CRIU would report in cr_errno.
class ReqError : public Error {
 public:
  ReqError(int err, const std::string& what) : Error(what), err_(err) {}
  int err() const { return err_; }

 private:
  int err_;
};

template <typename... Args>
[[noreturn]] void req_fail(int err, fmt::format_string<Args...> f, Args&&... a) {
  throw ReqError(err, fmt::format(f, std::forward<Args>(a)...));
}

const char* type_name(criu_req_type t) {
  return criu_req_type_IsValid(t) ? criu_req_type_Name(t).c_str() : "unknown";
}

// One client: a connected SOCK_SEQPACKET socket, one message per packet.
class Conn {
 public:
  explicit Conn(Fd fd) : fd_(std::move(fd)) {
    ucred cr{};
    socklen_t len = sizeof cr;
    if (::getsockopt(fd_.get(), SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
      fail_sys("cannot learn the RPC client's process (SO_PEERCRED on fd {})", fd_.get());
    peer_ = cr.pid;
    peer_uid_ = cr.uid;
  }
  pid_t peer() const { return peer_; }
  uid_t peer_uid() const { return peer_uid_; }
  int fd() const { return fd_.get(); }

  // The next request; nullopt when the client hung up. With a deadline, waiting longer fails.
  std::optional<criu_req> recv(const Deadline* deadline) {
    for (;;) {
      pollfd p{fd_.get(), POLLIN, 0};
      int ms = -1;
      if (deadline)
        ms = static_cast<int>(
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline->remaining()).count());
      int r = ::poll(&p, 1, ms);
      if (r < 0 && errno == EINTR) {
        interrupt_point();
        continue;
      }
      if (r < 0) fail_sys("cannot wait for the RPC client");
      if (r == 0) fail("the RPC client did not answer within {} s", deadline->seconds());
      break;
    }
    ssize_t size = ::recv(fd_.get(), nullptr, 0, MSG_PEEK | MSG_TRUNC);
    if (size < 0) {
      if (errno == ECONNRESET) return std::nullopt;
      fail_sys("cannot read from the RPC client");
    }
    std::string buf(static_cast<size_t>(size), '\0');
    ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n < 0) fail_sys("cannot read from the RPC client");
    // The end of the stream (an empty packet is no criu_req either: type is required).
    if (n == 0) return std::nullopt;
    criu_req req;
    if (!req.ParseFromString(buf))
      req_fail(EBADMSG, "the RPC client sent a message that is not a criu_req ({} bytes)", n);
    return req;
  }

  void send(const criu_resp& resp) {
    std::string buf;
    if (!resp.SerializeToString(&buf)) fail("cannot encode the RPC answer");
    if (::send(fd_.get(), buf.data(), buf.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(buf.size()))
      fail_sys("cannot answer the RPC client");
  }

 private:
  Fd fd_;
  pid_t peer_ = 0;
  uid_t peer_uid_ = 0;
};

// A directory the client passed as its descriptor N, opened through /proc/CLIENT/fd/N as
// CRIU does (a swrk child and a service both see the client's descriptors there).
struct ClientDir {
  Fd fd;
  std::string path;  // a path cryo can use for it: the real one, else /proc/CRYO/fd/M
};

ClientDir open_client_dir(pid_t peer, int n, const char* what) {
  std::string via = fmt::format("/proc/{}/fd/{}", peer, n);
  ClientDir d;
  d.fd.reset(::open(via.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d.fd) {
    int err = errno;
    req_fail(err,
             "cannot open the {} the RPC client passed as its fd {} ({}): {}: pass an "
             "open directory",
             what, n, via, std::strerror(err));
  }
  char buf[PATH_MAX + 1];
  ssize_t len = ::readlink(fmt::format("/proc/self/fd/{}", d.fd.get()).c_str(), buf, PATH_MAX);
  struct stat a, b;
  if (len > 0 && buf[0] == '/') {
    buf[len] = 0;
    if (::fstat(d.fd.get(), &a) == 0 && ::stat(buf, &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino) {
      d.path = buf;
      return d;
    }
  }
  d.path = fmt::format("/proc/{}/fd/{}", ::getpid(), d.fd.get());
  return d;
}

ClientDir open_named_dir(const std::string& path, const char* what) {
  ClientDir d;
  d.fd.reset(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d.fd) {
    int err = errno;
    req_fail(err, "cannot open the {} {}: {}", what, path, std::strerror(err));
  }
  d.path = path;
  return d;
}

// Parses words as the command line, with the configuration files as for `cryo ACTION`.
cli::Options parse_words(std::vector<std::string> words, bool configs) {
  words.insert(words.begin(), "cryo");
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  cli::Options o;
  cli::ConfigSources none;
  none.global.clear();
  cli::ConfigSources sources = configs ? cli::default_config_sources() : none;
  if (!cli::parse(static_cast<int>(words.size()), argv.data(), &o, sources))
    req_fail(EINVAL, "the options asked for help, not an action");
  return o;
}

class Session {
 public:
  Session(Conn& conn, const Execute& exec) : conn_(conn), exec_(exec) {}

  // Serves requests until the client hangs up or a request does not ask to keep it open.
  int serve() {
    for (;;) {
      std::optional<criu_req> req;
      try {
        req = conn_.recv(nullptr);
      } catch (const ReqError& e) {
        answer_error(EMPTY, e.err(), e.what());
        return 1;
      }
      if (!req) return 0;
      bool ok = handle(*req);
      if (!ok) return 1;
      if (!req->keep_open()) return 0;
    }
  }

 private:
  Conn& conn_;
  const Execute& exec_;
  pid_t restored_root_ = 0;

  void answer_error(criu_req_type type, int err, const std::string& msg) {
    criu_resp resp;
    resp.set_type(type);
    resp.set_success(false);
    resp.set_cr_errno(err);
    resp.set_cr_errmsg(msg);
    if (type == DUMP || type == PRE_DUMP) resp.mutable_dump()->set_restored(false);
    conn_.send(resp);
  }

  bool handle(const criu_req& req) {
    criu_resp resp;
    resp.set_type(req.type());
    resp.set_success(true);
    try {
      switch (req.type()) {
        case VERSION: {
          auto* v = resp.mutable_version();
          v->set_major_number(4);
          v->set_minor_number(2);
          v->set_name(std::string("cryo ") + CRYO_VERSION);
          break;
        }
        case CHECK:
          if (std::string why = cli::basics_problem(); !why.empty())
            req_fail(ENOTSUP, "{}: cryo cannot checkpoint/restore on this system", why);
          break;
        case FEATURE_CHECK:
          feature_check(req, resp.mutable_features());
          break;
        case DUMP:
        case PRE_DUMP:
        case SINGLE_PRE_DUMP:
          run_action(req, req.type() == DUMP ? "dump" : "pre-dump");
          resp.mutable_dump()->set_restored(false);
          break;
        case RESTORE:
          run_action(req, "restore");
          resp.mutable_restore()->set_pid(restored_root_);
          break;
        case PAGE_SERVER:
        case PAGE_SERVER_CHLD:
          // The command line's refusal; a page server over RPC is wired once one exists.
          options_for(req, "page-server", nullptr);
          req_fail(
              ENOTSUP,
              "a page server over RPC is not supported by cryo yet: run cryo page-server instead");
        case CPUINFO_DUMP:
        case CPUINFO_CHECK:
          options_for(req, req.type() == CPUINFO_DUMP ? "cpuinfo dump" : "cpuinfo check", nullptr);
          req_fail(ENOTSUP, "cpuinfo over RPC is not supported by cryo yet");
        case WAIT_PID:
          resp.set_status(wait_pid(static_cast<pid_t>(req.pid())));
          break;
        case NOTIFY:
          req_fail(EBADMSG, "a NOTIFY request came while no notification was pending");
        default:
          req_fail(EBADMSG, "unknown RPC request type {} ({})", static_cast<int>(req.type()),
                   type_name(req.type()));
      }
    } catch (const ReqError& e) {
      log::error("{}", e.what());
      answer_error(req.type(), e.err(), e.what());
      return false;
    } catch (const Error& e) {
      int err = errno;
      log::error("{}", e.what());
      answer_error(req.type(), err, e.what());
      return false;
    } catch (const std::exception& e) {
      log::error("internal: {}", e.what());
      answer_error(req.type(), EINVAL, fmt::format("internal: {}", e.what()));
      return false;
    }
    conn_.send(resp);
    return true;
  }

  void feature_check(const criu_req& req, criu_features* out) {
    // As CRIU: every field answered, true only where asked for and supported.
    out->set_mem_track(false);
    out->set_lazy_pages(false);
    out->set_pidfd_store(false);
    const criu_features& ask = req.features();
    if (ask.has_mem_track()) out->set_mem_track(cli::feature_problem("mem_dirty_track").empty());
    if (ask.has_lazy_pages()) out->set_lazy_pages(cli::feature_problem("uffd-noncoop").empty());
    if (ask.has_pidfd_store()) out->set_pidfd_store(cli::feature_problem("pidfd_store").empty());
  }

  // The request's options as the command line's; every refused field is named at once.
  cli::Options options_for(const criu_req& req, const std::string& action,
                           std::optional<ClientDir>* dirs) {
    criu_opts none;
    const criu_opts& o = req.has_opts() ? req.opts() : none;
    std::vector<std::string> action_words;
    for (size_t at = 0, sp; at <= action.size(); at = sp + 1) {
      sp = action.find(' ', at);
      if (sp == std::string::npos) sp = action.size();
      action_words.push_back(action.substr(at, sp - at));
    }
    std::vector<std::string> words;
    // As CRIU: a configuration file the request names but that does not exist is skipped
    // (runc always names /etc/criu/runc.conf).
    if (o.has_config_file()) {
      if (::access(o.config_file().c_str(), F_OK) == 0)
        words.insert(words.end(), {"--config", o.config_file()});
      else
        log::info("no configuration file {} (criu_opts.config_file): skipped", o.config_file());
    }
    words.push_back(fmt::format("--verbosity={}", o.log_level()));
    if (dirs) {
      // The images directory: the client's descriptor, else (CRIU 4) a path.
      if (o.images_dir_fd() >= 0)
        dirs[0] = open_client_dir(conn_.peer(), o.images_dir_fd(), "images directory");
      else if (o.has_images_dir())
        dirs[0] = open_named_dir(o.images_dir(), "images directory");
      else
        req_fail(EINVAL, "the request names no images directory: set images_dir_fd");
      words.insert(words.end(), {"--images-dir", dirs[0]->path});
      if (o.has_work_dir_fd()) {
        dirs[1] = open_client_dir(conn_.peer(), o.work_dir_fd(), "work directory");
        words.insert(words.end(), {"--work-dir", dirs[1]->path});
      }
      // As CRIU: a name in the work directory, criu.log unless told otherwise.
      const bool to_stderr = o.log_to_stderr() || o.log_file() == "-";
      const std::string log = to_stderr          ? std::string("-")
                              : o.has_log_file() ? o.log_file()
                                                 : std::string("criu.log");
      if (log.find('/') != std::string::npos)
        req_fail(EINVAL,
                 "log_file '{}' has a '/': give a name, the log goes to the work "
                 "directory",
                 log);
      words.insert(words.end(), {"--log-file", log});
      // From here on the log holds the reasons, as the client's user looks there.
      log::init(to_stderr ? log : (dirs[1] ? dirs[1] : dirs[0])->path + "/" + log, o.log_level());
    }

    const bool dumping = action == "dump" || action == "pre-dump";
    std::vector<FieldWords> fields = option_words(o, dumping);
    std::string refused;
    for (const auto& f : fields) {
      std::string why = f.refusal;
      if (why.empty()) {
        std::vector<std::string> w = f.words;
        w.insert(w.end(), action_words.begin(), action_words.end());
        try {
          parse_words(w, false);
        } catch (const Error& e) {
          why = e.what();
        }
      }
      if (!why.empty())
        refused += fmt::format("{}criu_opts.{}: {}", refused.empty() ? "" : "; ", f.field, why);
    }
    if (!refused.empty()) req_fail(EINVAL, "{}", refused);
    for (const auto& f : fields) words.insert(words.end(), f.words.begin(), f.words.end());

    if (action == "dump" || action == "pre-dump") {
      if (!o.has_pid())
        req_fail(EINVAL,
                 "criu_opts.pid is not set: dumping the requesting process itself is not "
                 "supported by cryo yet: set pid to the root of the tree to dump");
      if (o.pid() <= 0 || (::kill(o.pid(), 0) < 0 && errno == ESRCH))
        req_fail(ESRCH, "no process {} to dump (criu_opts.pid): give the PID of a running tree",
                 o.pid());
      words.insert(words.end(), {"--tree", std::to_string(o.pid())});
    }
    words.insert(words.end(), action_words.begin(), action_words.end());
    return parse_words(words, true);
  }

  void run_action(const criu_req& req, const char* action) {
    if (!req.has_opts()) req_fail(EINVAL, "a {} request needs opts", action);
    // cryo checks no ownership of what it dumps or restores: a client of a root service that
    // is not root could reach other users' processes and files.
    if (conn_.peer_uid() != ::geteuid())
      req_fail(EPERM,
               "the RPC client runs as uid {}, cryo as uid {}: cryo serves a {} only to a "
               "client of its own uid",
               conn_.peer_uid(), ::geteuid(), action);
    std::optional<ClientDir> dirs[2];
    cli::Options o = options_for(req, action, dirs);
    // As CRIU: the restored tree is left to run on its own once the answer is sent.
    if (o.action == "restore") o.restore_detached = true;
    restored_root_ = 0;
    hooks::Hooks h;
    const bool notify = req.opts().notify_scripts();
    h.add([this, notify](const std::string& script, pid_t root) {
      if (script == hooks::kPostRestore) restored_root_ = root;
      if (notify) this->notify(script, root);
    });
    o.hooks = &h;
    int rc = exec_(o);
    if (rc != 0) req_fail(0, "{} ended with status {}", action, rc);
  }

  // A notification, answered by the client with a NOTIFY request.
  void notify(const std::string& script, pid_t root) {
    criu_resp n;
    n.set_type(NOTIFY);
    n.set_success(true);
    n.mutable_notify()->set_script(script);
    // As CRIU: the root's PID goes with the two notifications that need it.
    if (script == hooks::kSetupNamespaces || script == hooks::kPostRestore)
      n.mutable_notify()->set_pid(root);
    log::info("notifying the RPC client: {}", script);
    conn_.send(n);
    Deadline deadline(kNotifyTimeout);
    std::optional<criu_req> ans = conn_.recv(&deadline);
    if (!ans) fail("the RPC client hung up at the '{}' notification", script);
    if (ans->type() != NOTIFY)
      fail("the RPC client answered the '{}' notification with a {} request", script,
           type_name(ans->type()));
    if (!ans->notify_success())
      fail("the RPC client's '{}' callback failed (notify_success is false)", script);
  }

  // WAIT_PID: waits for a child of this worker (a restored root) to end; a client that hangs
  // up stops the wait.
  int wait_pid(pid_t pid) {
    if (pid <= 0) req_fail(EINVAL, "WAIT_PID needs pid");
    Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd) {
      int err = errno;
      req_fail(err, "cannot wait for process {}: {}", pid, std::strerror(err));
    }
    for (;;) {
      int st;
      pid_t w = ::waitpid(pid, &st, WNOHANG | __WALL);
      if (w == pid) return st;
      if (w < 0) {
        int err = errno;
        req_fail(err,
                 "cannot wait for process {}: {} (only a process this RPC worker restored "
                 "can be waited for)",
                 pid, std::strerror(err));
      }
      pollfd p[2] = {{pidfd.get(), POLLIN, 0}, {conn_.fd(), POLLRDHUP, 0}};
      int r = ::poll(p, 2, 1000);
      if (r < 0 && errno == EINTR) interrupt_point();
      if (r > 0 && (p[1].revents & (POLLHUP | POLLRDHUP | POLLERR)))
        req_fail(ECONNRESET, "the RPC client hung up while waiting for process {}", pid);
    }
  }
};

int serve(Fd fd, const Execute& exec) {
  Conn conn(std::move(fd));
  Session s(conn, exec);
  return s.serve();
}

void write_pidfile(const std::string& path) {
  if (path.empty()) return;
  Fd pf = create_new_file(path, "pidfile");
  std::string s = std::to_string(::getpid());
  if (::write(pf.get(), s.data(), s.size()) != static_cast<ssize_t>(s.size()))
    fail_sys("cannot write pidfile {}", path);
}

}  // namespace

int swrk(const cli::Options& o, const Execute& exec) {
  const std::string& arg = o.action_args.at(0);
  char* end;
  long fd = std::strtol(arg.c_str(), &end, 10);
  if (end == arg.c_str() || *end || fd < 0 || fd > INT_MAX)
    fail("bad descriptor '{}' for swrk: give the number of the inherited socket", arg);
  int type = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
      type != SOCK_SEQPACKET)
    fail(
        "swrk: fd {} is not a SOCK_SEQPACKET socket: start cryo swrk FD with one end of a "
        "socketpair(AF_UNIX, SOCK_SEQPACKET)",
        fd);
  ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
  return serve(Fd(static_cast<int>(fd)), exec);
}

int service(const cli::Options& o, const Execute& exec) {
  std::string path = o.address.empty() ? "./criu_service.socket" : o.address;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    fail("service address {} is too long for a unix socket ({} bytes at most)", path,
         sizeof addr.sun_path - 1);
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  Fd sk(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!sk) fail_sys("cannot create the service socket");
  // A socket a previous service left is replaced; anything else at the path is not touched.
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      fail("service address {} is {}, not a socket: remove it or choose another --address", path,
           file_type_name(st.st_mode));
    ::unlink(path.c_str());
  }
  if (::bind(sk.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
    fail_sys("cannot bind the service socket to {}", path);
  if (::listen(sk.get(), 16) < 0) fail_sys("cannot listen on {}", path);

  if (o.restore_detached) {
    // -d: the caller gets its prompt back once the socket listens and the pidfile is written,
    // or with the reason it could not be.
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) < 0) fail_sys("cannot go to the background");
    pid_t child = ::fork();
    if (child < 0) fail_sys("cannot go to the background");
    if (child > 0) {
      ::close(ready[1]);
      char c = 0;
      ssize_t n;
      do n = ::read(ready[0], &c, 1);
      while (n < 0 && errno == EINTR);
      ::_exit(n == 1 ? 0 : 1);
    }
    ::close(ready[0]);
    ::setsid();
    write_pidfile(o.pidfile);
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) ::dup2(null, fd);
      if (null > STDERR_FILENO) ::close(null);
    }
    if (::write(ready[1], "1", 1) != 1) fail_sys("cannot tell the caller the service runs");
    ::close(ready[1]);
  } else {
    write_pidfile(o.pidfile);
  }
  log::info("serving CRIU's RPC on {}", path);
  for (;;) {
    // Workers that ended are reaped here; they never outlive a request's answer for long.
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    pollfd p{sk.get(), POLLIN, 0};
    int r = ::poll(&p, 1, 1000);
    if (r < 0 && errno != EINTR) fail_sys("cannot wait for RPC clients on {}", path);
    if (int sig = stop_signal()) {
      log::info("service on {} stopped by signal {}", path, sig);
      return 0;
    }
    if (r <= 0) continue;
    Fd c(::accept4(sk.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!c) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      fail_sys("cannot accept an RPC client on {}", path);
    }
    pid_t w = ::fork();
    if (w < 0) {
      log::error("cannot start a worker for an RPC client: {}", std::strerror(errno));
      continue;
    }
    if (w == 0) {
      sk.reset();
      int rc = 1;
      try {
        rc = serve(std::move(c), exec);
      } catch (const Error& e) {
        log::error("{}", e.what());
      }
      std::fflush(nullptr);
      ::_exit(rc);
    }
  }
}

}  // namespace cryo::rpc
