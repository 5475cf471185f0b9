#include "dump/fsnotify.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <sstream>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"
#include "dump/event_files.h"
#include "kernel/syscalls.h"
#include "proc/proc.h"

namespace cryo::dump {
namespace {

constexpr size_t kMaxHandle = 128;  // MAX_HANDLE_SZ
constexpr int kHandleWords = 16;    // fh_entry.handle always holds 16 words, as CRIU writes it

// fdinfo shows a superblock's device in the kernel's encoding: major << 20 | minor.
unsigned kdev_major(uint32_t kdev) {
  return kdev >> 20;
}
unsigned kdev_minor(uint32_t kdev) {
  return kdev & 0xfffff;
}

// Names one watch in messages: "task 12 fd 4: inotify wd 3".
struct Who {
  pid_t pid;
  int fd;
  std::string mark;
  std::string str() const { return fmt::format("task {} fd {}: {}", pid, fd, mark); }
};

uint64_t hex_field(const FdinfoRecord& r, const char* key, const Who& who) {
  auto it = r.find(key);
  if (it == r.end() || it->second.empty())
    fail("{}: no '{}' in its fdinfo (kernel too old?)", who.str(), key);
  size_t used = 0;
  uint64_t v = 0;
  try {
    v = std::stoull(it->second, &used, 16);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != it->second.size())
    fail("{}: cannot parse '{}:{}' in its fdinfo", who.str(), key, it->second);
  return v;
}

// The handle as fdinfo shows it (fhandle-bytes, fhandle-type, f_handle in hex); none when the
// filesystem cannot encode one.
void parse_handle(const FdinfoRecord& r, const Who& who, fh_entry* fh, std::string* raw) {
  raw->clear();
  if (r.count("fhandle-bytes")) {
    uint64_t bytes = hex_field(r, "fhandle-bytes", who);
    const std::string hex = r.count("f_handle") ? r.at("f_handle") : "";
    if (bytes > kMaxHandle || hex.size() != bytes * 2 ||
        !std::all_of(hex.begin(), hex.end(), [](unsigned char c) { return std::isxdigit(c); }))
      fail("{}: its file handle in fdinfo is malformed ({} bytes, '{}')", who.str(), bytes, hex);
    for (size_t i = 0; i < bytes; i++)
      raw->push_back(static_cast<char>(std::stoul(hex.substr(2 * i, 2), nullptr, 16)));
    fh->set_bytes(static_cast<uint32_t>(bytes));
    fh->set_type(static_cast<uint32_t>(hex_field(r, "fhandle-type", who)));
  } else {
    fh->set_bytes(0);
    fh->set_type(0);
  }
  uint64_t words[kHandleWords] = {};
  std::memcpy(words, raw->data(), raw->size());
  for (uint64_t w : words) fh->add_handle(w);
}

// A mount of cryo's mount namespace (the dumped tree shares it).
struct Mount {
  int id = 0;
  unsigned major = 0, minor = 0;
  std::string root, point;
};

std::string unescape_octal(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8)));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<Mount> read_mounts() {
  std::vector<Mount> mounts;
  std::istringstream in(proc::read_file("/proc/self/mountinfo"));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    Mount m;
    int parent = 0;
    std::string dev;
    if (!(ls >> m.id >> parent >> dev >> m.root >> m.point)) continue;
    if (std::sscanf(dev.c_str(), "%u:%u", &m.major, &m.minor) != 2) continue;
    m.root = unescape_octal(m.root);
    m.point = unescape_octal(m.point);
    mounts.push_back(std::move(m));
  }
  return mounts;
}

// A path naming inode `ino` of the superblock `kdev` now: the handle is opened on each
// directory mount of that superblock (whole-filesystem mounts first), and the path the kernel
// gives the result must lead back to the same inode.
std::string watched_path(const Who& who, uint32_t kdev, uint64_t ino, const fh_entry& fh,
                         const std::string& raw) {
  const std::string what = fmt::format("{} watches inode {:#x} on device {}:{}", who.str(), ino,
                                       kdev_major(kdev), kdev_minor(kdev));
  if (fh.bytes() == 0)
    fail(
        "{}, whose filesystem gives no file handle for it: cryo cannot find its path; watch "
        "files on another filesystem",
        what);
  std::vector<Mount> mounts = read_mounts();
  std::stable_partition(mounts.begin(), mounts.end(), [](const Mount& m) { return m.root == "/"; });
  std::vector<unsigned char> buf(sizeof(file_handle) + kMaxHandle);
  auto* h = reinterpret_cast<file_handle*>(buf.data());
  h->handle_bytes = fh.bytes();
  h->handle_type = static_cast<int>(fh.type());
  std::memcpy(h->f_handle, raw.data(), raw.size());
  const dev_t want = makedev(kdev_major(kdev), kdev_minor(kdev));
  std::string tried;
  for (const Mount& m : mounts) {
    if (m.major != kdev_major(kdev) || m.minor != kdev_minor(kdev)) continue;
    struct stat mst;
    if (::stat(m.point.c_str(), &mst) < 0 || !S_ISDIR(mst.st_mode) || mst.st_dev != want)
      continue;  // not a directory, or another mount covers it
    Fd mfd(::open(m.point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!mfd) continue;
    Fd f(::open_by_handle_at(mfd.get(), h, O_PATH | O_CLOEXEC));
    if (!f) {
      tried += fmt::format("; {}: {}", m.point, std::strerror(errno));
      continue;
    }
    std::string path = proc::read_link(fmt::format("/proc/self/fd/{}", f.get()));
    struct stat st;
    if (::fstat(f.get(), &st) < 0) fail_sys("{}: cannot stat it", what);
    if (st.st_nlink == 0 || path.find(" (deleted)") != std::string::npos)
      fail(
          "{}, which was deleted ({}): a watch on a deleted file cannot be restored; remove the "
          "watch (inotify_rm_watch) or close the deleted file before the dump",
          what, path);
    struct stat pst;
    if (::stat(path.c_str(), &pst) == 0 && pst.st_dev == want && pst.st_ino == ino) return path;
    tried += fmt::format("; {}: found as {}, which is another file now", m.point, path);
  }
  fail(
      "{}: no path leads to it{}: its filesystem cannot open file handles (proc, ...), or is "
      "not mounted where cryo runs, or the file is no longer linked",
      what, tried.empty() ? "" : fmt::format(" (tried {})", tried.substr(2)));
}

// Events still queued are lost: say so.
void warn_pending(FdContext& c, const char* kind) {
  const pid_t pid = c.pid;
  const int fd = c.fd;
  int bytes = 0;
  if (::ioctl(c.copy(), FIONREAD, &bytes) < 0)
    fail_sys("task {} fd {}: cannot inspect its {} queue", pid, fd, kind);
  if (bytes > 0)
    log::user(log::kWarn, fmt::format("task {} fd {}: the {} bytes of {} events still queued are "
                                      "not saved; the restored task will not read them",
                                      pid, fd, bytes, kind));
}

}  // namespace

std::vector<FdinfoRecord> fdinfo_records(const std::string& text, const std::string& prefix) {
  std::vector<FdinfoRecord> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix + " ", 0) != 0) continue;
    std::istringstream words(line.substr(prefix.size() + 1));
    FdinfoRecord r;
    std::string w;
    while (words >> w) {
      size_t c = w.find(':');
      if (c == std::string::npos) continue;
      r[w.substr(0, c)] = w.substr(c + 1);
    }
    out.push_back(std::move(r));
  }
  return out;
}

void dump_inotify(FdContext& c, uint32_t id, file_entry* e) {
  const pid_t pid = c.pid;
  const int fd = c.fd;
  const uint32_t flags = c.flags;
  const std::string& text = c.fdinfo;
  warn_pending(c, "inotify");
  auto* ie = e->mutable_ify();
  ie->set_id(id);
  ie->set_flags(flags);
  zero_fown(ie->mutable_fown());
  for (const FdinfoRecord& r : fdinfo_records(text, "inotify")) {
    Who who{pid, fd, "inotify watch"};
    const auto wd = static_cast<uint32_t>(hex_field(r, "wd", who));
    who.mark = fmt::format("inotify wd {}", wd);
    auto* w = ie->add_wd();
    w->set_id(id);
    w->set_wd(wd);
    w->set_i_ino(hex_field(r, "ino", who));
    w->set_s_dev(static_cast<uint32_t>(hex_field(r, "sdev", who)));
    w->set_mask(static_cast<uint32_t>(hex_field(r, "mask", who)));
    w->set_ignored_mask(static_cast<uint32_t>(hex_field(r, "ignored_mask", who)));
    std::string raw;
    parse_handle(r, who, w->mutable_f_handle(), &raw);
    w->mutable_f_handle()->set_path(watched_path(who, w->s_dev(), w->i_ino(), w->f_handle(), raw));
    log::debug("task {} fd {}: inotify wd {} mask {:#x} on {}", pid, fd, wd, w->mask(),
               w->f_handle().path());
  }
  // The kernel lists the newest watch first; restore adds them in increasing wd order.
  std::sort(ie->mutable_wd()->begin(), ie->mutable_wd()->end(),
            [](const inotify_wd_entry& a, const inotify_wd_entry& b) { return a.wd() < b.wd(); });
}

void dump_fanotify(FdContext& c, uint32_t id, file_entry* e) {
  const pid_t pid = c.pid;
  const int fd = c.fd;
  const uint32_t flags = c.flags;
  const std::string& text = c.fdinfo;
  warn_pending(c, "fanotify");
  auto* fe = e->mutable_ffy();
  fe->set_id(id);
  fe->set_flags(flags);
  zero_fown(fe->mutable_fown());
  bool header = false;
  std::vector<Mount> mounts;
  for (const FdinfoRecord& r : fdinfo_records(text, "fanotify")) {
    Who who{pid, fd, "fanotify group"};
    if (r.count("event-flags")) {
      fe->set_faflags(static_cast<uint32_t>(hex_field(r, "flags", who)));
      fe->set_evflags(static_cast<uint32_t>(hex_field(r, "event-flags", who)));
      header = true;
      continue;
    }
    auto* m = fe->add_mark();
    m->set_id(id);
    m->set_mflags(static_cast<uint32_t>(hex_field(r, "mflags", who)));
    m->set_mask(static_cast<uint32_t>(hex_field(r, "mask", who)));
    m->set_ignored_mask(static_cast<uint32_t>(hex_field(r, "ignored_mask", who)));
    if (r.count("ino")) {
      const uint64_t ino = hex_field(r, "ino", who);
      who.mark = fmt::format("fanotify inode mark {:#x}", ino);
      m->set_type(INODE);
      m->set_s_dev(static_cast<uint32_t>(hex_field(r, "sdev", who)));
      auto* ie = m->mutable_ie();
      ie->set_i_ino(ino);
      std::string raw;
      parse_handle(r, who, ie->mutable_f_handle(), &raw);
      ie->mutable_f_handle()->set_path(watched_path(who, m->s_dev(), ino, ie->f_handle(), raw));
      log::debug("task {} fd {}: fanotify mark mask {:#x} on {}", pid, fd, m->mask(),
                 ie->f_handle().path());
    } else if (r.count("mnt_id")) {
      const auto mnt_id = static_cast<int>(hex_field(r, "mnt_id", who));
      who.mark = fmt::format("fanotify mount mark on mount {}", mnt_id);
      if (mounts.empty()) mounts = read_mounts();
      auto it = std::find_if(mounts.begin(), mounts.end(),
                             [&](const Mount& mt) { return mt.id == mnt_id; });
      if (it == mounts.end())
        fail("{}: mount {} is not in cryo's mount namespace: not supported", who.str(), mnt_id);
      m->set_type(MOUNT);
      m->set_s_dev(it->major << 20 | it->minor);
      m->mutable_me()->set_mnt_id(static_cast<uint32_t>(mnt_id));
      m->mutable_me()->set_path(it->point);
      log::debug("task {} fd {}: fanotify mount mark mask {:#x} on {}", pid, fd, m->mask(),
                 it->point);
    } else {
      // Filesystem (FAN_MARK_FILESYSTEM) and mount-namespace marks have no place in the image.
      std::string words;
      for (const auto& [k, v] : r) words += fmt::format(" {}:{}", k, v);
      fail(
          "task {} fd {}: fanotify group has a filesystem-wide or namespace mark ({}): only "
          "inode and mount marks are supported",
          pid, fd, words.substr(1));
    }
  }
  if (!header) fail("task {} fd {}: no 'fanotify flags:' in its fdinfo (kernel too old?)", pid, fd);
}

namespace {

class InotifyKind : public FileKind {
 public:
  fd_types type() const override { return INOTIFY; }
  bool claims(FdContext& c) override { return c.link == "anon_inode:inotify"; }
  void dump(FdContext& c, uint32_t id, file_entry* e) override { dump_inotify(c, id, e); }
};

class FanotifyKind : public FileKind {
 public:
  fd_types type() const override { return FANOTIFY; }
  bool claims(FdContext& c) override { return c.link == "anon_inode:[fanotify]"; }
  void dump(FdContext& c, uint32_t id, file_entry* e) override { dump_fanotify(c, id, e); }
};

}  // namespace

std::unique_ptr<FileKind> make_inotify_kind(FileTable&) {
  return std::make_unique<InotifyKind>();
}
std::unique_ptr<FileKind> make_fanotify_kind(FileTable&) {
  return std::make_unique<FanotifyKind>();
}

}  // namespace cryo::dump
