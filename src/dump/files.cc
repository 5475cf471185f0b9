#include "dump/files.h"

#include "dump/event_files.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <system_error>
#include <thread>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "image/file_entry.h"
#include "image/image.h"
#include "kernel/namespace.h"
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

void refuse_io_uring(const FrozenTask& t) {
  const std::vector<pid_t>& io_workers = t.io_workers;
  const pid_t pid = t.pid;
  const proc::Vma* ring = nullptr;
  for (const proc::Vma& v : t.maps)
    if (v.path == kIoUringLink) ring = &v;
  if (!ring && io_workers.empty()) return;  // an fd on a ring alone is refused with the fds
  // Name the ring's fd when there is one, as the fds would.
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
  if (ring)
    fail(
        "task {}: an io_uring instance is mapped at {:x}-{:x} ({}) with no fd left on it: "
        "io_uring is not supported yet",
        pid, ring->start, ring->end, ring->path);
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

FileTable::FileTable(FileTableOptions o) : opts_(std::move(o)) {
  if (!opts_.shmem || !opts_.locks) fail("internal: a file table needs its shmem and lock tables");
  ghosts_.set_limit(opts_.ghost_limit);
  kinds_ = make_file_kinds(*this);
}

FileTable::~FileTable() = default;

void FileTable::add_entry(file_entry e) {
  if (e.id() >= index_.size())
    index_.resize(std::max<size_t>(e.id() + 1, index_.size() * 2), kNone);
  index_[e.id()] = entries_.size();
  entries_.push_back(std::move(e));
}

file_entry& FileTable::entry(uint32_t id) {
  if (id >= index_.size() || index_[id] == kNone) fail("internal: no file {} in the table", id);
  return entries_[index_[id]];
}

std::string FileTable::remap_deleted(uint32_t id, const std::string& link,
                                     const std::string& proc_path, const std::string& what) {
  bool linked = false;
  const std::string gone = deleted_path(link, proc_path, opts_.link_remap ? &linked : nullptr);
  if (gone.empty()) return link;
  if (proc_path.empty()) fail("{}: a deleted file or directory is not supported here", what);
  if (!linked) {
    ghosts_.add(id, proc_path, what);
    return gone;
  }
  const uint32_t link_id = next_id_++;
  file_entry e;
  e.set_type(REG);
  e.set_id(link_id);
  auto* r = e.mutable_reg();
  r->set_id(link_id);
  r->set_flags(0);
  r->set_pos(0);
  zero_fown(r->mutable_fown());
  r->set_name(ghosts_.link(id, link_id, proc_path, gone, what));
  add_entry(std::move(e));
  return gone;
}

uint32_t FileTable::by_path(const std::string& path, uint32_t flags, const std::string& proc_link) {
  auto key = std::make_pair(path, flags);
  if (auto it = paths_.find(key); it != paths_.end()) return it->second;
  uint32_t id = next_id_++;
  file_entry e;
  e.set_type(REG);
  e.set_id(id);
  auto* r = e.mutable_reg();
  r->set_id(id);
  r->set_flags(flags);
  r->set_pos(0);
  zero_fown(r->mutable_fown());
  const std::string name = remap_deleted(
      id, path, proc_link, proc_link.empty() ? path : fmt::format("{} ({})", path, proc_link));
  r->set_name(name);
  struct stat st;
  if (name == path && ::stat(path.c_str(), &st) == 0) {
    if (S_ISREG(st.st_mode)) r->set_size(st.st_size);
    r->set_mode(st.st_mode);
  }
  add_entry(std::move(e));
  paths_[key] = id;
  return id;
}

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
  mi.set_mode(st.st_mode);
  // As CRIU: a memfd of huge pages has MFD_HUGETLB and log2 of their size (MFD_HUGE_SHIFT, 26).
  struct statfs sf {};
  if (::fstatfs(copy.get(), &sf) == 0 && sf.f_type == HUGETLBFS_MAGIC && sf.f_bsize > 0)
    mi.set_hugetlb_flag(MFD_HUGETLB |
                        (static_cast<uint32_t>(__builtin_ctzl(sf.f_bsize)) << MAP_HUGE_SHIFT));
  memfds_[st.st_ino] = mi;
  opts_.shmem->add_link(st.st_ino, proc_link, pid);
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
  add_entry(std::move(e));
  memfd_maps_[key] = id;
  return id;
}

// The open file's owner (F_SETOWN, F_SETOWN_EX), its signal (F_SETSIG) and the ids the
// kernel checks when it signals the owner, into the kind's fown entry.
void FileTable::note_owner(FdContext& c, file_entry* e) {
  fown_entry* o = image::mutable_file_owner(e);
  if (!o || (c.flags & O_PATH)) return;  // an O_PATH fd has no owner (fcntl says EBADF)
  f_owner_ex ex{};
  if (::fcntl(c.copy(), F_GETOWN_EX, &ex) < 0) fail_sys("{}: cannot read its owner", c.where());
  const int sig = ::fcntl(c.copy(), F_GETSIG);
  if (sig < 0) fail_sys("{}: cannot read its owner's signal", c.where());
  if (!ex.pid && !sig) return;
  if (ex.pid && ex.type != F_OWNER_PGRP) {
    pid_t process = ex.pid;
    if (ex.type == F_OWNER_TID)
      if (auto st = proc::try_read_file(fmt::format("/proc/{}/status", ex.pid)))
        process = proc::parse_status(*st).tgid;
    if (!opts_.in_tree(process))
      fail("{}: its owner (F_SETOWN) is {} {}, outside the dumped tree: not supported", c.where(),
           ex.type == F_OWNER_TID ? "thread" : "process", ex.pid);
  }
  uint32_t uids[2] = {0, 0};
  constexpr int kGetOwnerUids = 17;  // F_GETOWNER_UIDS
  if (ex.pid && ::fcntl(c.copy(), kGetOwnerUids, uids) < 0)
    fail_sys("{}: cannot read its owner's ids", c.where());
  o->set_uid(uids[0]);
  o->set_euid(uids[1]);
  o->set_signum(static_cast<uint32_t>(sig));
  o->set_pid_type(static_cast<uint32_t>(ex.type));
  o->set_pid(static_cast<uint32_t>(ex.pid));
}

FileKind& FileTable::kind_of(FdContext& c) {
  // Sockets are described (sock_diag) and made again in cryo's network namespace.
  if (S_ISSOCK(c.st.st_mode) && !(c.flags & O_PATH)) {
    static const uint64_t cryo_net = kernel::ns_inode("/proc/self/ns/net");
    if (const uint64_t ns = kernel::socket_net_ns(c.copy()); ns != cryo_net)
      fail(
          "{}: a socket of network namespace net:[{}], not cryo's (net:[{}]): sockets of "
          "another network namespace are not supported yet",
          c.where(), ns, cryo_net);
  }
  for (auto& k : kinds_)
    if (k->claims(c)) return *k;
  if (c.link.rfind("socket:", 0) == 0)
    fail("{}: a socket of family {} is not supported yet", c.where(), c.socket_domain());
  if (std::string k = kind_of_link(c.link); !k.empty()) refuse_fd(c.pid, c.fd, k, c.link);
  fail("{}: a file of mode {:o} is not supported yet", c.where(), c.st.st_mode);
}

// Open files are told apart in two steps: by what all fds of one open file show alike in
// their fdinfo (inode, mount, flags, offset, an eventfd's id), then within the few that share
// those by kcmp, which orders open files: a binary search finds the file among those seen,
// so n fds cost O(n log n).
FileTable::Key FileTable::key_of(const FdContext& c) {
  return Key{c.info.ino, c.info.mnt_id, c.flags, c.info.pos, c.object_id};
}

uint32_t FileTable::identify(const FdContext& c, uint32_t fresh) {
  std::vector<Known>& group = open_files_[key_of(c)];
  auto order = [&](const Known& k) {
    long r = kernel::kcmp(k.pid, c.pid, kernel::kKcmpFile, static_cast<unsigned long>(k.fd),
                          static_cast<unsigned long>(c.fd));
    if (r < 0 || r > 2)
      fail_sys("{}: cannot compare it with task {} fd {} (kcmp)", c.where(), k.pid, k.fd);
    return r;  // 0: the same open file; 1: k orders before c's; 2: after
  };
  size_t lo = 0, hi = group.size();
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    long r = order(group[mid]);
    if (r == 0) return group[mid].id;
    if (r == 1)
      lo = mid + 1;
    else
      hi = mid;
  }
  group.insert(group.begin() + static_cast<std::ptrdiff_t>(lo), Known{c.pid, c.fd, fresh});
  return fresh;
}

uint32_t FileTable::file_id(FdContext& c, bool* fresh) {
  // fdinfo shows the inode number (Linux 5.14 on); else it comes from stat.
  if (!c.info.ino) {
    c.describe();
    c.info.ino = c.st.st_ino;
  }
  const uint32_t id = identify(c, next_id_);
  *fresh = id == next_id_;
  if (!*fresh) return id;
  next_id_++;
  if (c.link.empty()) c.describe();
  FileKind& kind = kind_of(c);
  file_entry e;
  e.set_id(id);
  e.set_type(kind.type());
  kind.dump(c, id, &e);
  note_owner(c, &e);
  add_entry(std::move(e));
  return id;
}

uint32_t FileTable::dump_held_file(FdSource& source, int fd) {
  FdContext c(source, fd);
  bool fresh = false;
  const uint32_t id = file_id(c, &fresh);
  log::debug("file in flight {} -> file {}", c.link, id);
  return id;
}

uint32_t FileTable::mapped_socket(pid_t pid, const std::string& link, const std::string& where) {
  const std::string base = fmt::format("/proc/{}/fd", pid);
  for (int fd : proc::list_dir_numbers(base)) {
    std::string l;
    try {
      l = proc::read_link(fmt::format("{}/{}", base, fd));
    } catch (const Error&) {
      continue;  // closed meanwhile
    }
    if (l != link) continue;
    FdSource source(pid);
    return dump_held_file(source, fd);
  }
  fail(
      "{}: the task maps a socket's ring but holds no fd on that socket any more: not supported "
      "(CRIU neither)",
      where);
}

namespace {

// The fdinfo of a task's fds, read on a second thread ahead of their dump: reading it is
// about half of what an fd costs, and needs nothing of the table. The rest (comparing open
// files, dumping the first fd of each) stays on the calling thread, in fd order. (Describing
// there too the fds surely first of their open file made the second thread the slower one.)
class FdinfoAhead {
 public:
  FdinfoAhead(FdSource& source, const std::vector<int>& fds)
      : source_(source), fds_(fds), slots_(fds.size()), errors_(fds.size()) {
    source.open_all();                    // the thread only uses what is open
    constexpr size_t kMinForThread = 64;  // below, a thread costs more than it saves
    if (fds.size() < kMinForThread) return;
    // The thread takes no signal: stop signals and the per-thread wait alarms are for the
    // thread that works with the tasks.
    sigset_t all, old;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
      thread_ = std::thread([this] { run(); });
    } catch (const std::system_error&) {
      // No thread: each fdinfo is read when its fd comes.
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  ~FdinfoAhead() {
    stop_.store(true, std::memory_order_relaxed);
    if (thread_.joinable()) thread_.join();
  }
  FdinfoAhead(const FdinfoAhead&) = delete;
  FdinfoAhead& operator=(const FdinfoAhead&) = delete;

  // The context of the `i`th fd, once read; throws what reading it threw.
  std::unique_ptr<FdContext> take(size_t i) {
    if (!thread_.joinable()) return std::make_unique<FdContext>(source_, fds_[i]);
    size_t done;
    while ((done = done_.load(std::memory_order_acquire)) <= i)
      done_.wait(done, std::memory_order_acquire);
    if (errors_[i]) std::rethrow_exception(errors_[i]);
    return std::move(slots_[i]);
  }

 private:
  void run() {
    for (size_t i = 0; i < fds_.size() && !stop_.load(std::memory_order_relaxed); i++) {
      try {
        slots_[i] = std::make_unique<FdContext>(source_, fds_[i]);
      } catch (...) {
        errors_[i] = std::current_exception();
      }
      done_.store(i + 1, std::memory_order_release);
      done_.notify_one();
    }
  }

  FdSource& source_;
  const std::vector<int>& fds_;
  std::vector<std::unique_ptr<FdContext>> slots_;
  std::vector<std::exception_ptr> errors_;
  std::atomic<size_t> done_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

const task_kobj_ids_entry& FileTable::task_ids(pid_t pid) const {
  auto it = task_ids_.find(pid);
  if (it == task_ids_.end()) it = task_ids_.find(first_task_);
  if (it == task_ids_.end()) fail("internal: the ids of task {} are not known", pid);
  return it->second;
}

void FileTable::dump_fds(pid_t pid, const task_kobj_ids_entry& ids, const std::string& dir) {
  if (task_ids_.empty()) first_task_ = pid;
  task_ids_[pid] = ids;
  image::Writer w(dir, fmt::format("fdinfo-{}.img", ids.files_id()), image::magic::kFdinfo);
  FdSource source(pid);
  const std::vector<int> fds = proc::list_dir_numbers(fmt::format("/proc/{}/fd", pid));
  FdinfoAhead ahead(source, fds);
  for (size_t i = 0; i < fds.size(); i++) {
    const std::unique_ptr<FdContext> context = ahead.take(i);
    FdContext& c = *context;
    const int fd = fds[i];
    bool fresh = false;
    const uint32_t id = file_id(c, &fresh);
    // Another fd of an open file seen before: only its locks are its own to look at.
    if (fresh || !c.info.locks.empty()) {
      if (c.link.empty()) c.describe();
      opts_.locks->note_fd(pid, fd, id, c.link, c.st.st_dev, c.st.st_ino, c.info.locks);
    }
    fdinfo_entry fe;
    fe.set_id(id);
    fe.set_flags((c.info.flags & O_CLOEXEC) ? FD_CLOEXEC : 0);
    fe.set_type(entry(id).type());
    fe.set_fd(fd);
    w.put(fe);
    log::debug("task {} fd {} -> file {}{}{}", pid, fd, id, c.link.empty() ? "" : " ", c.link);
  }
  w.close();
}

uint32_t FileTable::epoll_target(pid_t pid, const kernel::KcmpEpollSlot& slot) const {
  for (const auto& [key, group] : open_files_)
    for (const Known& k : group)
      if (kernel::kcmp(k.pid, pid, kernel::kKcmpEpollTfd, static_cast<unsigned long>(k.fd),
                       reinterpret_cast<unsigned long>(&slot)) == 0)
        return k.id;
  return 0;
}

void FileTable::write(const std::string& dir) {
  DumpEnd end{dir, opts_.shell_job, opts_.ext_unix_sk, opts_.in_tree};
  for (auto& k : kinds_) k->finish(*this, end);
  image::Writer w(dir, "files.img", image::magic::kFiles);
  for (const auto& e : entries_) w.put(e);
  w.close();
  for (auto& k : kinds_) k->write(end);
  ghosts_.write(dir);
  if (!memfds_.empty()) {
    image::Writer m(dir, "memfd.img", image::magic::kMemfdInode);
    for (const auto& [ino, mi] : memfds_) m.put(mi);
    m.close();
  }
}

}  // namespace cryo::dump
