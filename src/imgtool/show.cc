#include "imgtool/show.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "base/error.h"
#include "core.pb.h"
#include "fdinfo.pb.h"
#include "fs.pb.h"
#include "image/image.h"
#include "inventory.pb.h"
#include "memfd.pb.h"
#include "mm.pb.h"
#include "pagemap.pb.h"
#include "pipe-data.pb.h"
#include "pstree.pb.h"
#include "remap-file-path.pb.h"
#include "sk-packet.pb.h"
#include "tty.pb.h"

namespace cryo::imgtool {
namespace {

constexpr uint64_t kPage = 4096;

std::string human(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) v /= 1024, u++;
  if (u == 0) return fmt::format("{} B", bytes);
  if (v == static_cast<double>(static_cast<uint64_t>(v)))
    return fmt::format("{} {}", static_cast<uint64_t>(v), kUnits[u]);
  return fmt::format("{:.1f} {}", v, kUnits[u]);
}

template <typename M>
std::vector<M> read_all(const std::string& dir, const std::string& name, uint32_t magic) {
  image::Reader r(dir, name, magic);
  std::vector<M> out;
  M m;
  while (r.next(m)) out.push_back(m);
  return out;
}

template <typename M>
M read_single(const std::string& dir, const std::string& name, uint32_t magic) {
  M m;
  image::read_one(dir, name, magic, m);
  return m;
}

std::string access_mode(uint32_t flags) {
  switch (flags & O_ACCMODE) {
    case O_RDONLY:
      return "r";
    case O_WRONLY:
      return "w";
    default:
      return "rw";
  }
}

const char* sock_type(uint32_t t) {
  switch (t) {
    case 1:
      return "stream";
    case 2:
      return "dgram";
    case 3:
      return "raw";
    case 5:
      return "seqpacket";
  }
  return "?";
}

const char* tcp_state(uint32_t s) {
  static const char* kNames[] = {"?",          "established", "syn-sent",  "syn-recv",
                                 "fin-wait1",  "fin-wait2",   "time-wait", "close",
                                 "close-wait", "last-ack",    "listen",    "closing"};
  return s < std::size(kNames) ? kNames[s] : "?";
}

std::string unix_name(const std::string& n) {
  if (n.empty() || n[0] != '\0') return n;
  std::string s = "@";  // an abstract name
  s.append(n, 1, std::string::npos);
  return s;
}

std::string inet_addr(const google::protobuf::RepeatedField<uint32_t>& a, uint32_t port) {
  unsigned char b[16] = {};
  int words = std::min(a.size(), 4);
  for (int k = 0; k < words; k++) std::memcpy(b + 4 * k, &a[k], 4);
  std::string s;
  if (words <= 1) {
    s = fmt::format("{}.{}.{}.{}", b[0], b[1], b[2], b[3]);
  } else {
    char text[64];
    ::inet_ntop(AF_INET6, b, text, sizeof text);
    s = fmt::format("[{}]", text);
  }
  return fmt::format("{}:{}", s, port);
}

struct Owner {
  uint32_t pid, fd;
};

class Show {
 public:
  explicit Show(const std::string& dir) : dir_(dir) {}

  std::string run() {
    struct stat st;
    if (::stat(dir_.c_str(), &st) < 0 || !S_ISDIR(st.st_mode)) fail("{} is not a directory", dir_);
    if (!image::exists(dir_, "pstree.img"))
      fail("{} is not an images directory: it has no pstree.img", dir_);
    load();
    header();
    tree();
    for (const pstree_entry& p : tree_) process(p);
    sockets();
    totals();
    // No trailing blanks where a column is empty.
    std::string out;
    out.reserve(out_.size());
    for (char c : out_) {
      if (c == '\n')
        while (!out.empty() && out.back() == ' ') out.pop_back();
      out += c;
    }
    return out;
  }

 private:
  void load() {
    tree_ = read_all<pstree_entry>(dir_, "pstree.img", image::magic::kPstree);
    if (image::exists(dir_, "files.img"))
      for (auto& f : read_all<file_entry>(dir_, "files.img", image::magic::kFiles))
        files_[f.id()] = f;
    for (const char* name : {"pipes-data.img", "fifo-data.img"}) {
      if (!image::exists(dir_, name)) continue;
      uint32_t magic = std::string(name) == "pipes-data.img" ? image::magic::kPipesData
                                                             : image::magic::kFifoData;
      image::Reader r(dir_, name, magic);
      pipe_data_entry e;
      while (r.next(e)) {
        queued_[e.pipe_id()] += e.bytes();
        r.take_raw(e.bytes());
      }
    }
    if (image::exists(dir_, "sk-queues.img")) {
      image::Reader r(dir_, "sk-queues.img", image::magic::kSkQueues);
      sk_packet_entry e;
      while (r.next(e)) {
        auto& q = skq_[e.id_for()];
        q.first++;
        q.second += e.length();
        r.take_raw(e.length());
      }
    }
    if (image::exists(dir_, "remap-fpath.img"))
      for (auto& r :
           read_all<remap_file_path_entry>(dir_, "remap-fpath.img", image::magic::kRemapFpath))
        ghosts_.insert(r.orig_id());
    if (image::exists(dir_, "tty-info.img"))
      for (auto& t : read_all<tty_info_entry>(dir_, "tty-info.img", image::magic::kTtyInfo))
        ttys_[t.id()] = t;
    if (image::exists(dir_, "tty-data.img"))
      for (auto& t : read_all<tty_data_entry>(dir_, "tty-data.img", image::magic::kTtyData))
        tty_queued_[t.tty_id()] += t.data().size();
    if (image::exists(dir_, "memfd.img"))
      for (auto& m : read_all<memfd_inode_entry>(dir_, "memfd.img", image::magic::kMemfdInode))
        memfd_names_[m.inode_id()] = m.name();
    for (const pstree_entry& p : tree_) {
      std::string ids_name = fmt::format("ids-{}.img", p.pid());
      if (!image::exists(dir_, ids_name)) continue;  // a zombie
      task_kobj_ids_entry ids =
          read_single<task_kobj_ids_entry>(dir_, ids_name, image::magic::kIds);
      files_id_[p.pid()] = ids.files_id();
      std::string fdname = fmt::format("fdinfo-{}.img", ids.files_id());
      if (fdinfo_.count(ids.files_id()) || !image::exists(dir_, fdname)) continue;
      fdinfo_[ids.files_id()] = read_all<fdinfo_entry>(dir_, fdname, image::magic::kFdinfo);
    }
    for (const pstree_entry& p : tree_)
      if (files_id_.count(p.pid()))
        for (const fdinfo_entry& fd : fdinfo_[files_id_[p.pid()]])
          owners_[fd.id()].push_back({p.pid(), fd.fd()});
    for (auto& [id, f] : files_)
      if (f.has_usk()) unix_by_ino_[f.usk().ino()] = id;
  }

  std::string owners_of(uint32_t file_id, uint32_t except_pid = 0) const {
    auto it = owners_.find(file_id);
    if (it == owners_.end()) return "no fd in the tree";
    std::string s;
    for (const Owner& o : it->second) {
      if (o.pid == except_pid) continue;
      if (!s.empty()) s += ", ";
      s += fmt::format("pid {} fd {}", o.pid, o.fd);
    }
    return s;
  }

  std::string file_name(uint32_t id) const {
    auto it = files_.find(id);
    if (it == files_.end() || !it->second.has_reg()) return fmt::format("file #{}", id);
    std::string n = it->second.reg().name();
    if (ghosts_.count(id)) n += " (deleted)";
    return n;
  }

  std::string queue(uint32_t file_id) const {
    auto it = skq_.find(file_id);
    if (it == skq_.end()) return "";
    return fmt::format(", {} packet(s) queued ({})", it->second.first, human(it->second.second));
  }

  // KIND, DETAILS of a file of the tree.
  std::pair<std::string, std::string> describe(uint32_t id, uint32_t pid) const {
    auto it = files_.find(id);
    if (it == files_.end()) return {"?", fmt::format("file #{} not in files.img", id)};
    const file_entry& f = it->second;
    if (f.has_reg()) {
      const reg_file_entry& r = f.reg();
      return {"file",
              fmt::format("{} ({}, pos {})", file_name(id), access_mode(r.flags()), r.pos())};
    }
    if (f.has_pipe()) {
      const pipe_entry& p = f.pipe();
      std::string d = fmt::format("pipe:[{}] {} end", p.pipe_id(),
                                  (p.flags() & O_ACCMODE) == O_WRONLY ? "write" : "read");
      if (auto q = queued_.find(p.pipe_id()); q != queued_.end() && q->second)
        d += fmt::format(", {} queued", human(q->second));
      return {"pipe", d};
    }
    if (f.has_fifo()) {
      std::string d =
          fmt::format("{} (fifo:[{}])", file_name(f.fifo().regf_id()), f.fifo().pipe_id());
      if (auto q = queued_.find(f.fifo().pipe_id()); q != queued_.end() && q->second)
        d += fmt::format(", {} queued", human(q->second));
      return {"fifo", d};
    }
    if (f.has_usk()) {
      const unix_sk_entry& u = f.usk();
      std::string d = fmt::format("{} {}", sock_type(u.type()), tcp_state(u.state()));
      if (!u.name().empty()) d += " " + unix_name(u.name());
      if (u.peer()) {
        auto p = unix_by_ino_.find(u.peer());
        d += p == unix_by_ino_.end() ? fmt::format(", peer ino {} outside the tree", u.peer())
                                     : fmt::format(", peer {}", owners_of(p->second, 0));
      }
      return {"unix", d + queue(id)};
    }
    if (f.has_isk()) {
      const inet_sk_entry& s = f.isk();
      std::string proto = s.proto() == 6    ? "tcp"
                          : s.proto() == 17 ? "udp"
                                            : fmt::format("proto {}", s.proto());
      std::string d = fmt::format("{}{} {} {}", proto, s.family() == 10 ? "6" : "",
                                  tcp_state(s.state()), inet_addr(s.src_addr(), s.src_port()));
      if (s.dst_port()) d += " -> " + inet_addr(s.dst_addr(), s.dst_port());
      return {"inet", d + queue(id)};
    }
    if (f.has_efd()) return {"eventfd", fmt::format("counter {}", f.efd().counter())};
    if (f.has_epfd()) {
      std::string d;
      for (const auto& t : f.epfd().tfd())
        d += fmt::format("{}{}", d.empty() ? "watches fd " : ", ", t.tfd());
      return {"epoll", d.empty() ? "watches nothing" : d};
    }
    if (f.has_sgfd()) return {"signalfd", fmt::format("mask {:#x}", f.sgfd().sigmask())};
    if (f.has_tfd())
      return {"timerfd",
              fmt::format("clock {}, {} tick(s) pending", f.tfd().clockid(), f.tfd().ticks())};
    if (f.has_ify()) return {"inotify", fmt::format("{} watch(es)", f.ify().wd_size())};
    if (f.has_ffy()) return {"fanotify", fmt::format("{} mark(s)", f.ffy().mark_size())};
    if (f.has_memfd()) {
      auto n = memfd_names_.find(f.memfd().inode_id());
      return {"memfd",
              fmt::format("{} ({}, pos {})", n == memfd_names_.end() ? "?" : "memfd:" + n->second,
                          access_mode(f.memfd().flags()), f.memfd().pos())};
    }
    if (f.has_tty()) return {"tty", tty(f.tty())};
    if (f.has_ext()) return {"external", ""};
    (void)pid;
    return {fd_types_Name(f.type()), ""};
  }

  std::string tty(const tty_file_entry& t) const {
    auto it = ttys_.find(t.tty_info_id());
    const tty_info_entry* i = it == ttys_.end() ? nullptr : &it->second;
    std::string d;
    if (t.has_regf_id())
      d = file_name(t.regf_id());
    else if (i && i->type() == PTY && i->has_pty())
      d = major(i->rdev()) == 5 ? "/dev/ptmx" : fmt::format("/dev/pts/{}", i->pty().index());
    else
      d = fmt::format("tty #{}", t.tty_info_id());
    d += fmt::format(" ({})", access_mode(t.flags()));
    if (!i) return d;
    if (i->type() == PTY && i->has_pty())
      d += fmt::format(", {} of pty {}", major(i->rdev()) == 5 ? "master" : "slave",
                       i->pty().index());
    else
      d += fmt::format(", {}", TtyType_Name(i->type()));
    if (i->sid()) d += fmt::format(", session {}, foreground group {}", i->sid(), i->pgrp());
    if (auto q = tty_queued_.find(i->id()); q != tty_queued_.end())
      d += fmt::format(", {} queued", human(q->second));
    return d;
  }

  void header() {
    out_ += fmt::format("Images in {}\n", dir_);
    if (image::exists(dir_, "inventory.img")) {
      auto inv = read_single<inventory_entry>(dir_, "inventory.img", image::magic::kInventory);
      out_ += fmt::format("  image version {}{}\n", inv.img_version(),
                          inv.img_version() == image::kImagesV1_1 ? " (v1.1)" : "");
    }
    out_ += '\n';
  }

  std::string comm_of(uint32_t pid) {
    if (auto it = comm_.find(pid); it != comm_.end()) return it->second;
    std::string name = fmt::format("core-{}.img", pid);
    std::string c = "?";
    if (image::exists(dir_, name)) {
      auto core = read_single<core_entry>(dir_, name, image::magic::kCore);
      if (core.has_tc()) {
        c = core.tc().comm();
        state_[pid] = core.tc().task_state();
      } else if (core.has_thread_core()) {
        c = core.thread_core().comm();
      }
    }
    return comm_[pid] = c;
  }

  void tree() {
    out_ += "Process tree\n";
    out_ += fmt::format("  {:>7} {:>7} {:>7} {:>7} {:>4}  {:<8} {}\n", "PID", "PPID", "PGID", "SID",
                        "THR", "STATE", "COMMAND");
    std::set<uint32_t> pids;
    for (const auto& p : tree_) pids.insert(p.pid());
    for (const auto& p : tree_)
      if (!pids.count(p.ppid())) tree_line(p, 0);
    out_ += '\n';
  }

  void tree_line(const pstree_entry& p, int depth) {
    std::string comm = comm_of(p.pid());
    uint32_t st = state_.count(p.pid()) ? state_[p.pid()] : 0;
    const char* state = st == image::kTaskAlive     ? "alive"
                        : st == image::kTaskDead    ? "zombie"
                        : st == image::kTaskStopped ? "stopped"
                                                    : "?";
    out_ += fmt::format("  {:>7} {:>7} {:>7} {:>7} {:>4}  {:<8} {}{}\n", p.pid(), p.ppid(),
                        p.pgid(), p.sid(), std::max(p.threads_size(), 1), state,
                        std::string(static_cast<size_t>(depth) * 2, ' '), comm);
    for (const auto& c : tree_)
      if (c.ppid() == p.pid() && c.pid() != p.pid()) tree_line(c, depth + 1);
  }

  void process(const pstree_entry& p) {
    uint32_t pid = p.pid();
    out_ += fmt::format("Process {} ({})\n", pid, comm_of(pid));
    processes_++;
    if (state_[pid] == image::kTaskDead) {
      out_ += "  zombie: no memory or files\n\n";
      zombies_++;
      return;
    }
    if (p.threads_size() > 1) {
      std::string t;
      for (uint32_t tid : p.threads())
        t += fmt::format("{}{} ({})", t.empty() ? "" : ", ", tid, comm_of(tid));
      out_ += fmt::format("  threads: {}\n", t);
      threads_ += static_cast<uint64_t>(p.threads_size());
    } else {
      threads_++;
    }
    memory(pid);
    fds(pid);
    out_ += '\n';
  }

  void memory(uint32_t pid) {
    std::string mm_name = fmt::format("mm-{}.img", pid);
    if (!image::exists(dir_, mm_name)) {
      out_ += "  memory: no mm image\n";
      return;
    }
    auto mm = read_single<mm_entry>(dir_, mm_name, image::magic::kMm);
    if (mm.exe_file_id()) out_ += fmt::format("  exe: {}\n", file_name(mm.exe_file_id()));
    // Dumped pages per area, from the pagemap.
    std::vector<pagemap_entry> pages;
    uint32_t pages_id = 0;
    std::string pm_name = fmt::format("pagemap-{}.img", pid);
    if (image::exists(dir_, pm_name)) {
      image::Reader r(dir_, pm_name, image::magic::kPagemap);
      pagemap_head h;
      if (r.next(h)) pages_id = h.pages_id();
      pagemap_entry e;
      while (r.next(e)) pages.push_back(e);
    }
    uint64_t mapped = 0, dumped = 0, parent = 0;
    for (const auto& v : mm.vmas()) mapped += v.end() - v.start();
    for (const auto& e : pages) {
      bool present = !e.has_flags() || (e.flags() & image::kPePresent);
      if (e.in_parent() || (e.has_flags() && (e.flags() & image::kPeParent)))
        parent += e.nr_pages();
      else if (present)
        dumped += e.nr_pages();
    }
    out_ += fmt::format("  memory: {} areas, {} mapped, {} page(s) dumped ({}) in pages-{}.img{}\n",
                        mm.vmas_size(), human(mapped), dumped, human(dumped * kPage), pages_id,
                        parent ? fmt::format(", {} page(s) in the parent images", parent) : "");
    out_ += fmt::format("    {:<33} {:>10} {:<4} {:<11} {:>7}  {}\n", "AREA", "SIZE", "PROT",
                        "KIND", "DUMPED", "FILE");
    for (const auto& v : mm.vmas()) {
      uint64_t n = 0;
      for (const auto& e : pages) {
        uint64_t s = std::max(e.vaddr(), v.start());
        uint64_t t = std::min(e.vaddr() + e.nr_pages() * kPage, v.end());
        if (s < t) n += (t - s) / kPage;
      }
      std::string prot = fmt::format("{}{}{}{}", v.prot() & 1 ? 'r' : '-', v.prot() & 2 ? 'w' : '-',
                                     v.prot() & 4 ? 'x' : '-', v.flags() & 1 ? 's' : 'p');
      uint32_t s = v.status();
      std::string kind = s & image::kVmaStack                                   ? "stack"
                         : s & image::kVmaHeap                                  ? "heap"
                         : s & image::kVmaVdso                                  ? "vdso"
                         : s & image::kVmaVvar                                  ? "vvar"
                         : s & image::kVmaVsyscall                              ? "vsyscall"
                         : s & image::kVmaMemfd                                 ? "memfd"
                         : s & (image::kVmaFilePrivate | image::kVmaFileShared) ? "file"
                         : s & image::kVmaSysvipc                               ? "sysv shm"
                         : s & image::kVmaAnonShared                            ? "anon shared"
                         : s & image::kVmaAnonPrivate                           ? "anon"
                                                                                : "other";
      std::string file;
      if (s & (image::kVmaFilePrivate | image::kVmaFileShared | image::kVmaMemfd))
        file = file_name(static_cast<uint32_t>(v.shmid()));
      out_ += fmt::format("    {:016x}-{:016x} {:>10} {:<4} {:<11} {:>7}  {}\n", v.start(), v.end(),
                          human(v.end() - v.start()), prot, kind, n, file);
    }
    vmas_ += static_cast<uint64_t>(mm.vmas_size());
    mapped_ += mapped;
    pages_ += dumped;
  }

  void fds(uint32_t pid) {
    auto it = fdinfo_.find(files_id_[pid]);
    if (it == fdinfo_.end()) {
      out_ += "  files: no fdinfo image\n";
      return;
    }
    std::vector<fdinfo_entry> fds = it->second;
    std::sort(fds.begin(), fds.end(), [](auto& a, auto& b) { return a.fd() < b.fd(); });
    out_ += fmt::format("  files: {} fd(s)\n", fds.size());
    if (fds.empty()) return;
    out_ += fmt::format("    {:>5} {:<9} {}\n", "FD", "KIND", "DETAILS");
    for (const auto& fd : fds) {
      auto [kind, details] = describe(fd.id(), pid);
      out_ += fmt::format("    {:>5} {:<9} {}{}\n", fd.fd(), kind, details,
                          fd.flags() & O_CLOEXEC ? " [cloexec]" : "");
      fds_++;
    }
  }

  void sockets() {
    std::vector<std::string> lines;
    for (const auto& [id, f] : files_) {
      if (!f.has_usk() && !f.has_isk()) continue;
      auto [kind, details] = describe(id, 0);
      lines.push_back(fmt::format("  {:<5} ino {:<9} {}; held by {}\n", kind,
                                  f.has_usk() ? f.usk().ino() : f.isk().ino(), details,
                                  owners_of(id)));
    }
    sockets_ = lines.size();
    if (lines.empty()) return;
    out_ += "Sockets\n";
    for (const auto& l : lines) out_ += l;
    out_ += '\n';
  }

  void totals() {
    uint64_t img_files = 0, img_bytes = 0, page_bytes = 0;
    if (DIR* d = ::opendir(dir_.c_str())) {
      while (dirent* e = ::readdir(d)) {
        struct stat st;
        std::string path = dir_ + "/" + e->d_name;
        if (::lstat(path.c_str(), &st) < 0 || !S_ISREG(st.st_mode)) continue;
        img_files++;
        img_bytes += static_cast<uint64_t>(st.st_size);
        if (std::string_view(e->d_name).starts_with("pages-"))
          page_bytes += static_cast<uint64_t>(st.st_size);
      }
      ::closedir(d);
    }
    uint64_t queued = 0;
    for (auto& [id, n] : queued_) queued += n;
    out_ += "Totals\n";
    out_ += fmt::format("  processes {}{}, threads {}\n", processes_,
                        zombies_ ? fmt::format(" ({} zombie)", zombies_) : "", threads_);
    out_ += fmt::format("  memory areas {}, {} mapped, {} page(s) dumped ({})\n", vmas_,
                        human(mapped_), pages_, human(pages_ * kPage));
    out_ += fmt::format("  fds {}, files {}, sockets {}, pipe/fifo data {}\n", fds_, files_.size(),
                        sockets_, human(queued));
    out_ += fmt::format("  image files {}, {} ({} of them pages)\n", img_files, human(img_bytes),
                        human(page_bytes));
  }

  std::string dir_;
  std::string out_;
  std::vector<pstree_entry> tree_;
  std::map<uint32_t, file_entry> files_;
  std::map<uint32_t, uint64_t> queued_;                    // pipe id -> bytes
  std::map<uint32_t, std::pair<uint64_t, uint64_t>> skq_;  // socket file id -> packets, bytes
  std::set<uint32_t> ghosts_;                              // deleted files' ids
  std::map<uint32_t, tty_info_entry> ttys_;                // tty info id -> info
  std::map<uint32_t, uint64_t> tty_queued_;                // tty info id -> bytes
  std::map<uint64_t, std::string> memfd_names_;            // inode id -> name
  std::map<uint32_t, uint32_t> files_id_;                  // pid -> files_id
  std::map<uint32_t, std::vector<fdinfo_entry>> fdinfo_;   // files_id -> fds
  std::map<uint32_t, std::vector<Owner>> owners_;          // file id -> fds holding it
  std::map<uint32_t, uint32_t> unix_by_ino_;               // inode -> file id
  std::map<uint32_t, std::string> comm_;
  std::map<uint32_t, uint32_t> state_;
  uint64_t processes_ = 0, zombies_ = 0, threads_ = 0, vmas_ = 0, mapped_ = 0, pages_ = 0, fds_ = 0;
  size_t sockets_ = 0;
};

}  // namespace

std::string show(const std::string& dir) {
  return Show(dir).run();
}

}  // namespace cryo::imgtool
