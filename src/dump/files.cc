#include "dump/files.h"

#include "dump/event_files.h"
#include "dump/fsnotify.h"
#include "dump/inet.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "image/image.h"
#include "kernel/syscalls.h"
#include "proc/proc.h"

namespace cryo::dump {
namespace {

constexpr const char* kIoUringLink = "anon_inode:[io_uring]";

// What kind of non-regular object a /proc/PID/fd link names, for the refusal message.
std::string kind_of_link(const std::string& link) {
  if (link.rfind("socket:", 0) == 0) return "socket";
  if (link.rfind("anon_inode:", 0) == 0) {
    std::string k = link.substr(11);
    if (!k.empty() && k.front() == '[') k = k.substr(1, k.size() - 2);
    return k;
  }
  return "";
}

[[noreturn]] void refuse_fd(pid_t pid, int fd, const std::string& kind, const std::string& link) {
  fail("task {} fd {}: {} ({}) is not supported yet", pid, fd, kind, link);
}

}  // namespace

void refuse_io_uring(pid_t pid, const std::vector<pid_t>& io_workers) {
  std::string base = fmt::format("/proc/{}/fd", pid);
  for (int fd : proc::list_dir_numbers(base)) {
    std::string link;
    try {
      link = proc::read_link(fmt::format("{}/{}", base, fd));
    } catch (const Error&) {
      continue;  // closed meanwhile by a task outside the tree sharing the fd table
    }
    if (link == kIoUringLink) refuse_fd(pid, fd, kind_of_link(link), link);
  }
  for (const proc::Vma& v : proc::read_maps(pid))
    if (v.path == kIoUringLink)
      fail(
          "task {}: an io_uring instance is mapped at {:x}-{:x} ({}) with no fd left on it: "
          "io_uring is not supported yet",
          pid, v.start, v.end, v.path);
  if (!io_workers.empty()) {
    std::string names;
    for (pid_t tid : io_workers) {
      std::string comm =
          proc::try_read_file(fmt::format("/proc/{}/task/{}/comm", pid, tid)).value_or("exited");
      if (!comm.empty() && comm.back() == '\n') comm.pop_back();
      names += fmt::format("{}{} {}", names.empty() ? "" : ", ", tid, comm);
    }
    fail("task {}: io_uring kernel threads work for it ({}): io_uring is not supported yet", pid,
         names);
  }
}

uint32_t FileTable::by_path(const std::string& path, uint32_t flags, const std::string& proc_link) {
  auto key = std::make_pair(path, flags);
  if (auto it = paths_.find(key); it != paths_.end()) return it->second;
  uint32_t id = next_id_++;
  const std::string gone = deleted_path(path, proc_link);
  file_entry e;
  e.set_type(REG);
  e.set_id(id);
  auto* r = e.mutable_reg();
  r->set_id(id);
  r->set_flags(flags);
  r->set_pos(0);
  zero_fown(r->mutable_fown());
  r->set_name(gone.empty() ? path : gone);
  struct stat st;
  if (!gone.empty()) {
    if (proc_link.empty()) fail("{}: a deleted file or directory is not supported here", path);
    ghosts_.add(id, proc_link, fmt::format("{} ({})", gone, proc_link));
  } else if (::stat(path.c_str(), &st) == 0) {
    if (S_ISREG(st.st_mode)) r->set_size(st.st_size);
    r->set_mode(st.st_mode);
  }
  entries_.push_back(std::move(e));
  paths_[key] = id;
  return id;
}

namespace {

uint64_t link_inode(const std::string& link) {
  size_t b = link.find('[');
  return b == std::string::npos ? 0 : std::stoull(link.substr(b + 1));
}

}  // namespace

void FileTable::add_memfd_inode(pid_t pid, const std::string& proc_link, const std::string& link,
                                const struct stat& st) {
  if (memfds_.count(st.st_ino)) return;
  Fd copy(::open(proc_link.c_str(), O_RDONLY | O_CLOEXEC));
  if (!copy) fail_sys("task {}: cannot open memfd {} through {}", pid, link, proc_link);
  int seals = ::fcntl(copy.get(), F_GET_SEALS);
  memfd_inode_entry mi;
  std::string name = link.substr(7);  // after "/memfd:"
  if (name.size() > 10 && name.compare(name.size() - 10, 10, " (deleted)") == 0)
    name.resize(name.size() - 10);
  mi.set_name(name);
  mi.set_uid(st.st_uid);
  mi.set_gid(st.st_gid);
  mi.set_size(static_cast<uint64_t>(st.st_size));
  mi.set_shmid(static_cast<uint32_t>(st.st_ino));
  mi.set_seals(seals > 0 ? static_cast<uint32_t>(seals) : 0);
  mi.set_inode_id(st.st_ino);
  memfds_[st.st_ino] = mi;
  if (!shmem_) fail("internal: no shared memory table for memfd contents");
  shmem_->add_link(st.st_ino, proc_link, pid);
}

uint32_t FileTable::memfd_mapping(pid_t pid, const std::string& proc_link, const std::string& link,
                                  uint32_t flags) {
  struct stat st;
  if (::stat(proc_link.c_str(), &st) < 0)
    fail_sys("task {}: cannot stat the memfd {} it maps ({})", pid, link, proc_link);
  auto key = std::make_pair(st.st_ino, flags);
  if (auto it = memfd_maps_.find(key); it != memfd_maps_.end()) return it->second;
  add_memfd_inode(pid, proc_link, link, st);
  uint32_t id = next_id_++;
  file_entry e;
  e.set_id(id);
  e.set_type(MEMFD);
  auto* m = e.mutable_memfd();
  m->set_id(id);
  m->set_flags(flags);
  m->set_pos(0);
  zero_fown(m->mutable_fown());
  m->set_inode_id(static_cast<uint32_t>(st.st_ino));
  entries_.push_back(std::move(e));
  memfd_maps_[key] = id;
  return id;
}

void FileTable::dump_fds(pid_t pid, uint32_t files_id, const std::string& dir, bool shell_job) {
  shell_job_ = shell_job;
  std::string base = fmt::format("/proc/{}/fd", pid);
  image::Writer w(dir, fmt::format("fdinfo-{}.img", files_id), image::magic::kFdinfo);
  for (int fd : proc::list_dir_numbers(base)) {
    std::string link = proc::read_link(fmt::format("{}/{}", base, fd));
    struct stat st;
    if (::stat(fmt::format("{}/{}", base, fd).c_str(), &st) < 0)
      fail_sys("task {} fd {}: cannot stat {}", pid, fd, link);
    proc::FdInfo fi = proc::read_fdinfo(pid, fd);
    const uint32_t flags = fi.flags & ~O_CLOEXEC;

    // What kind of file: decides the entry type and how it is dumped.
    fd_types type;
    if (link.rfind("pipe:", 0) == 0) {
      type = PIPE;
    } else if (link.rfind("socket:", 0) == 0) {
      int domain = 0;
      {
        Fd pidfd(kernel::pidfd_open(pid));
        Fd sk(pidfd ? kernel::pidfd_getfd(pidfd.get(), fd) : -1);
        socklen_t len = sizeof domain;
        if (!sk || ::getsockopt(sk.get(), SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
          fail_sys("task {} fd {}: cannot inspect {}", pid, fd, link);
      }
      if (domain == AF_UNIX)
        type = UNIXSK;
      else if (domain == AF_INET || domain == AF_INET6)
        type = INETSK;
      else
        fail("task {} fd {}: socket ({}, family {}) is not supported yet", pid, fd, link, domain);
    } else if (link == "anon_inode:[eventfd]") {
      type = EVENTFD;
    } else if (link == "anon_inode:[timerfd]") {
      type = TIMERFD;
    } else if (link == "anon_inode:[signalfd]") {
      type = SIGNALFD;
    } else if (link == "anon_inode:[eventpoll]") {
      type = EVENTPOLL;
    } else if (link == "anon_inode:inotify") {
      type = INOTIFY;
    } else if (link == "anon_inode:[fanotify]") {
      type = FANOTIFY;
    } else if (std::string k = kind_of_link(link); !k.empty()) {
      refuse_fd(pid, fd, k, link);
    } else if (S_ISFIFO(st.st_mode)) {
      type = FIFO;
    } else if (S_ISREG(st.st_mode) && link.rfind("/memfd:", 0) == 0) {
      type = MEMFD;
    } else if (S_ISCHR(st.st_mode) && is_tty_rdev(st.st_rdev)) {
      type = TTY;
    } else if (S_ISREG(st.st_mode) || S_ISCHR(st.st_mode) || S_ISDIR(st.st_mode)) {
      type = REG;
    } else {
      fail("task {} fd {}: {} (mode {:o}) is not supported yet", pid, fd, link, st.st_mode);
    }
    const std::string fd_path = fmt::format("{}/{}", base, fd);
    const std::string gone = type == REG ? deleted_path(link, fd_path) : "";
    if (type != MEMFD && type != REG && !deleted_path(link, fd_path).empty())
      fail("task {} fd {}: a deleted FIFO or device ({}) is not supported yet", pid, fd, link);

    // One id per open file: the same open file seen before (dup, fork) shares it.
    uint32_t id = 0;
    for (const Known& k : fds_) {
      if (kernel::kcmp(pid, k.pid, kernel::kKcmpFile, fd, k.fd) == 0) {
        id = k.id;
        break;
      }
    }
    if (id == 0) {
      id = next_id_++;
      fds_.push_back({pid, fd, id});
      file_entry e;
      e.set_id(id);
      e.set_type(type);
      switch (type) {
        case TTY:
          ttys_.add(pid, fd, link, st, id, flags, &e);
          break;
        case PIPE: {
          auto* p = e.mutable_pipe();
          p->set_id(id);
          p->set_pipe_id(static_cast<uint32_t>(link_inode(link)));
          p->set_flags(flags);
          zero_fown(p->mutable_fown());
          pipes_.add(pid, fd, link_inode(link), false);
          break;
        }
        case FIFO: {
          auto* f = e.mutable_fifo();
          f->set_id(id);
          f->set_pipe_id(static_cast<uint32_t>(st.st_ino));
          f->set_regf_id(by_path(link, flags));
          pipes_.add(pid, fd, st.st_ino, true);
          break;
        }
        case UNIXSK:
          unix_.dump(pid, fd, static_cast<uint32_t>(link_inode(link)), id, flags, &e);
          break;
        case INETSK: {
          Fd pidfd(kernel::pidfd_open(pid));
          Fd sk(pidfd ? kernel::pidfd_getfd(pidfd.get(), fd) : -1);
          if (!sk) fail_sys("task {} fd {}: cannot get a copy of {}", pid, fd, link);
          dump_inet_socket(pid, fd, sk.get(), static_cast<uint32_t>(link_inode(link)), id, flags,
                           &e);
          break;
        }
        case MEMFD: {
          auto* m = e.mutable_memfd();
          m->set_id(id);
          m->set_flags(flags);
          m->set_pos(fi.pos);
          zero_fown(m->mutable_fown());
          m->set_inode_id(static_cast<uint32_t>(st.st_ino));
          add_memfd_inode(pid, fmt::format("/proc/{}/fd/{}", pid, fd), link, st);
          break;
        }
        case EVENTPOLL:
          for (const DetachedTarget& d :
               dump_eventpoll(pid, fd, proc::read_file(fmt::format("/proc/{}/fdinfo/{}", pid, fd)),
                              id, flags, &e))
            detached_.push_back({entries_.size(), d, pid, fd});
          break;
        case INOTIFY:
          dump_inotify(pid, fd, id, flags, &e);
          break;
        case FANOTIFY:
          dump_fanotify(pid, fd, id, flags, &e);
          break;
        case EVENTFD:
        case TIMERFD:
        case SIGNALFD: {
          if (type == TIMERFD) {
            // An expired periodic timerfd counts its missed expirations and re-arms only
            // when asked: timerfd_gettime on a copy does that, without consuming them.
            Fd pidfd(kernel::pidfd_open(pid));
            Fd copy(pidfd ? kernel::pidfd_getfd(pidfd.get(), fd) : -1);
            itimerspec its;
            if (!copy || ::timerfd_gettime(copy.get(), &its) < 0)
              fail_sys("task {} fd {}: cannot read timerfd {}", pid, fd, link);
          }
          std::string text = proc::read_file(fmt::format("/proc/{}/fdinfo/{}", pid, fd));
          if (type == EVENTFD) dump_eventfd(text, id, flags, &e);
          if (type == TIMERFD) dump_timerfd(text, id, flags, &e);
          if (type == SIGNALFD) dump_signalfd(text, id, flags, &e);
          break;
        }
        default: {
          auto* r = e.mutable_reg();
          r->set_id(id);
          r->set_flags(flags);
          r->set_pos(fi.pos);
          zero_fown(r->mutable_fown());
          r->set_name(gone.empty() ? link : gone);
          r->set_mnt_id(fi.mnt_id);
          if (!gone.empty())
            ghosts_.add(id, fmt::format("{}/{}", base, fd),
                        fmt::format("task {} fd {} ({})", pid, fd, link));
          if (S_ISREG(st.st_mode)) r->set_size(st.st_size);
          r->set_mode(st.st_mode);
          break;
        }
      }
      entries_.push_back(std::move(e));
    }
    if (!locks_) fail("internal: no file lock table");
    locks_->note_fd(pid, fd, id, link, st.st_dev, st.st_ino, fi.locks);
    fdinfo_entry fe;
    fe.set_id(id);
    fe.set_flags((fi.flags & O_CLOEXEC) ? FD_CLOEXEC : 0);
    fe.set_type(type);
    fe.set_fd(fd);
    w.put(fe);
    log::debug("task {} fd {} -> file {} {}", pid, fd, id, link);
  }
  w.close();
}

// An epoll registration whose fd number was closed or reused still watches its file, which
// some fd of the tree holds: find which, so restore can register it again.
void FileTable::resolve_detached_epoll() {
  for (const Detached& d : detached_) {
    kernel::KcmpEpollSlot slot{static_cast<uint32_t>(d.epfd), d.target.tfd, d.target.toff};
    uint32_t found = 0;
    for (const Known& k : fds_) {
      if (kernel::kcmp(k.pid, d.pid, kernel::kKcmpEpollTfd, static_cast<unsigned long>(k.fd),
                       reinterpret_cast<unsigned long>(&slot)) == 0) {
        found = k.id;
        break;
      }
    }
    if (!found)
      fail(
          "task {}: epoll fd {} watches a file registered as fd {}, which was closed since, and "
          "no fd of the dumped tree holds that file any more: not supported",
          d.pid, d.epfd, d.target.tfd);
    entries_[d.entry].mutable_epfd()->mutable_tfd(d.target.tfd_index)->set_cryo_target_id(found);
    log::debug("task {}: epoll fd {} watches closed fd {}: file {}", d.pid, d.epfd, d.target.tfd,
               found);
  }
  detached_.clear();
}

void FileTable::write(const std::string& dir, bool ext_unix_sk,
                      const std::function<bool(pid_t)>& in_tree) {
  for (auto& e : unix_.finish(ext_unix_sk, [this] { return next_id_++; }))
    entries_.push_back(std::move(e));
  resolve_detached_epoll();
  image::Writer w(dir, "files.img", image::magic::kFiles);
  for (const auto& e : entries_) w.put(e);
  w.close();
  pipes_.write(dir);
  unix_.write(dir);
  ghosts_.write(dir);
  if (!memfds_.empty()) {
    image::Writer m(dir, "memfd.img", image::magic::kMemfdInode);
    for (const auto& [ino, mi] : memfds_) m.put(mi);
    m.close();
  }
  ttys_.write(dir, shell_job_, in_tree);
}

}  // namespace cryo::dump
