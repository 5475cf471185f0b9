// Parsers of /proc/PID/* files (man 5 proc). The parse_* functions work on string_views
// over the whole text and never use iostreams or regex: smaps of a large process has
// hundreds of thousands of lines.
#include "proc/proc.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string_view>
#include <type_traits>

#include "base/error.h"
#include "base/fd.h"

namespace cryo::proc {

namespace {

using std::string_view;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

string_view trim(string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

string_view ltrim(string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  return s;
}

// Yields the lines of a text (without '\n'), the last one even without a final newline.
class Lines {
 public:
  explicit Lines(string_view text) : rest_(text) {}
  bool next(string_view& line) {
    if (rest_.empty()) return false;
    const void* nl = std::memchr(rest_.data(), '\n', rest_.size());
    size_t n = nl ? static_cast<size_t>(static_cast<const char*>(nl) - rest_.data()) : rest_.size();
    line = rest_.substr(0, n);
    rest_.remove_prefix(nl ? n + 1 : n);
    return true;
  }

 private:
  string_view rest_;
};

// Yields whitespace-separated tokens.
class Tokens {
 public:
  explicit Tokens(string_view text) : rest_(text) {}
  bool next(string_view& tok) {
    rest_ = ltrim(rest_);
    if (rest_.empty()) return false;
    size_t n = 0;
    while (n < rest_.size() && !is_space(rest_[n])) ++n;
    tok = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return true;
  }
  string_view rest() const { return rest_; }

 private:
  string_view rest_;
};

// Parses the whole of s as a number in base; false if s is empty, has junk or overflows.
// An unsigned T accepts a leading '-' and gets the two's complement (stat prints some
// unsigned kernel fields, like exit_signal of a thread, as negative ints).
template <typename T>
bool to_num(string_view s, T& out, int base = 10) {
  if (s.empty()) return false;
  const char* b = s.data();
  const char* e = s.data() + s.size();
  if constexpr (std::is_unsigned_v<T>) {
    if (s.front() == '-') {
      int64_t v = 0;
      auto [p, ec] = std::from_chars(b, e, v, base);
      if (ec != std::errc() || p != e) return false;
      out = static_cast<T>(v);
      return true;
    }
  }
  T v{};
  auto [p, ec] = std::from_chars(b, e, v, base);
  if (ec != std::errc() || p != e) return false;
  out = v;
  return true;
}

template <typename T>
T num_or_fail(string_view s, const char* what, int base = 10) {
  T v{};
  if (!to_num(s, v, base)) fail("bad {} '{}'", what, s);
  return v;
}

// Splits "Key:\tvalue" into key and raw value (everything after the ':').
bool split_key(string_view line, string_view& key, string_view& value) {
  size_t colon = line.find(':');
  if (colon == string_view::npos) return false;
  key = line.substr(0, colon);
  value = line.substr(colon + 1);
  return true;
}

template <typename T>
std::vector<T> parse_list(string_view s, const char* what) {
  std::vector<T> out;
  Tokens toks(s);
  string_view t;
  while (toks.next(t)) out.push_back(num_or_fail<T>(t, what));
  return out;
}

// Calls parse(text), turning its errors into "cannot parse PATH: why".
template <typename F>
auto parse_file(const std::string& path, F&& parse) {
  std::string text = read_file(path);
  try {
    return parse(text);
  } catch (const Error& e) {
    fail("cannot parse {}: {}", path, e.what());
  }
}

std::string pid_path(pid_t pid, const char* name) {
  return fmt::format("/proc/{}/{}", pid, name);
}

// "start-end" in hex. Used to recognize VMA header lines.
bool parse_range(string_view tok, uint64_t& start, uint64_t& end) {
  size_t dash = tok.find('-');
  if (dash == string_view::npos) return false;
  return to_num(tok.substr(0, dash), start, 16) && to_num(tok.substr(dash + 1), end, 16);
}

// Parses a VMA header line whose first token (already split off) is the range.
void parse_vma_header(string_view line, Vma& v) {
  Tokens toks(line);
  string_view range, perms, off, dev, ino;
  if (!toks.next(range) || !parse_range(range, v.start, v.end)) fail("bad VMA range in '{}'", line);
  if (!toks.next(perms) || perms.size() != 4) fail("bad VMA perms in '{}'", line);
  v.r = perms[0] == 'r';
  v.w = perms[1] == 'w';
  v.x = perms[2] == 'x';
  v.shared = perms[3] == 's';
  if (!toks.next(off) || !to_num(off, v.pgoff, 16)) fail("bad VMA offset in '{}'", line);
  size_t colon;
  if (!toks.next(dev) || (colon = dev.find(':')) == string_view::npos ||
      !to_num(dev.substr(0, colon), v.dev_major, 16) ||
      !to_num(dev.substr(colon + 1), v.dev_minor, 16))
    fail("bad VMA device in '{}'", line);
  if (!toks.next(ino) || !to_num(ino, v.inode)) fail("bad VMA inode in '{}'", line);
  // The path is the rest of the line: it may contain spaces (even trailing ones).
  string_view path = toks.rest();
  while (!path.empty() && path.front() == ' ') path.remove_prefix(1);
  v.path.assign(path);
}

// A VMA header line: the first token contains '-' and parses as hex-hex.
bool is_vma_header(string_view line) {
  size_t sp = line.find(' ');
  string_view first = line.substr(0, sp);
  uint64_t a, b;
  return first.find('-') != string_view::npos && parse_range(first, a, b);
}

// "   1234 kB" -> 1234.
uint64_t parse_kb(string_view value, string_view key) {
  value = trim(value);
  if (value.ends_with("kB")) value = trim(value.substr(0, value.size() - 2));
  uint64_t v = 0;
  if (!to_num(value, v)) fail("bad {} '{}'", key, value);
  return v;
}

std::vector<Vma> parse_vmas(const std::string& text, bool details) {
  std::vector<Vma> out;
  Lines lines(text);
  string_view line;
  while (lines.next(line)) {
    if (line.empty()) continue;
    if (is_vma_header(line)) {
      parse_vma_header(line, out.emplace_back());
      continue;
    }
    if (!details || out.empty()) continue;
    string_view key, value;
    if (!split_key(line, key, value)) continue;
    Vma& v = out.back();
    if (key == "Rss") {
      v.rss_kb = parse_kb(value, key);
    } else if (key == "Swap") {
      v.swap_kb = parse_kb(value, key);
    } else if (key == "VmFlags") {
      Tokens toks(value);
      string_view f;
      while (toks.next(f)) v.vm_flags.emplace_back(f);
    }
  }
  return out;
}

uint64_t parse_rlim(string_view s) {
  if (s == "unlimited") return ~0ULL;
  return num_or_fail<uint64_t>(s, "limit");
}

bool is_rlim_value(string_view s) {
  uint64_t v;
  return s == "unlimited" || to_num(s, v);
}

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};

}  // namespace

// ---- stat ------------------------------------------------------------------------------

Stat parse_stat(const std::string& text) {
  Stat s;
  string_view t = trim(text);
  size_t open = t.find('(');
  size_t close = t.rfind(')');
  if (open == string_view::npos || close == string_view::npos || close < open)
    fail("no '(comm)' in '{}'", t);
  s.pid = num_or_fail<pid_t>(trim(t.substr(0, open)), "pid");
  s.comm.assign(t.substr(open + 1, close - open - 1));

  // f[i] is field i+3 (state is field 3).
  string_view f[50];
  size_t n = 0;
  Tokens toks(t.substr(close + 1));
  string_view tok;
  while (n < std::size(f) && toks.next(tok)) f[n++] = tok;
  // Fields up to 44 (cguest_time) exist since Linux 2.6.24; 45..52 came in 3.3 and 3.5.
  if (n < 42) fail("only {} fields after comm, need at least 42", n);
  auto field = [&](int num) { return f[num - 3]; };
  auto get = [&]<typename T>(T& out, int num, const char* name) {
    if (static_cast<size_t>(num - 3) >= n) return;  // absent on this kernel
    out = num_or_fail<T>(field(num), name);
  };

  if (field(3).size() != 1) fail("bad state '{}'", field(3));
  s.state = field(3)[0];
  get(s.ppid, 4, "ppid");
  get(s.pgrp, 5, "pgrp");
  get(s.session, 6, "session");
  get(s.tty_nr, 7, "tty_nr");
  get(s.tpgid, 8, "tpgid");
  get(s.flags, 9, "flags");
  get(s.priority, 18, "priority");
  get(s.nice, 19, "nice");
  get(s.num_threads, 20, "num_threads");
  get(s.starttime, 22, "starttime");
  get(s.startcode, 26, "startcode");
  get(s.endcode, 27, "endcode");
  get(s.startstack, 28, "startstack");
  get(s.exit_signal, 38, "exit_signal");
  get(s.rt_priority, 40, "rt_priority");
  get(s.policy, 41, "policy");
  get(s.start_data, 45, "start_data");
  get(s.end_data, 46, "end_data");
  get(s.start_brk, 47, "start_brk");
  get(s.arg_start, 48, "arg_start");
  get(s.arg_end, 49, "arg_end");
  get(s.env_start, 50, "env_start");
  get(s.env_end, 51, "env_end");
  get(s.exit_code, 52, "exit_code");
  return s;
}

Stat read_stat(pid_t pid) {
  return parse_file(pid_path(pid, "stat"), parse_stat);
}

std::string describe_state(pid_t tid) {
  std::string state = "?", wchan;
  if (auto text = try_read_file(fmt::format("/proc/{}/stat", tid)))
    state = std::string(1, parse_stat(*text).state);
  if (auto w = try_read_file(fmt::format("/proc/{}/wchan", tid)); w && *w != "0" && !w->empty())
    wchan = fmt::format(", waiting in {}", *w);
  // A task that does not come back while running in the kernel: where it is.
  if (wchan.empty() && state == "R")
    if (auto stack = try_read_file(fmt::format("/proc/{}/stack", tid)); stack && !stack->empty()) {
      std::string top = stack->substr(0, stack->find('\n'));
      size_t sp = top.find(' ');
      wchan =
          fmt::format(", in the kernel at {}", sp == std::string::npos ? top : top.substr(sp + 1));
    }
  return fmt::format("state {}{}", state, wchan);
}

bool is_io_worker(pid_t pid, pid_t tid) {
  std::string path = fmt::format("/proc/{}/task/{}/stat", pid, tid);
  auto text = try_read_file(path);
  if (!text) return false;  // exited: the caller's seize says so
  try {
    return (parse_stat(*text).flags & kPfIoWorker) != 0;
  } catch (const Error& e) {
    fail("cannot parse {}: {}", path, e.what());
  }
}

// ---- status ----------------------------------------------------------------------------

Status parse_status(const std::string& text) {
  Status s;
  bool have_name = false, have_state = false, have_pid = false, have_uid = false, have_gid = false;
  auto ids4 = [](string_view v, uint32_t(&out)[4], string_view key) {
    Tokens toks(v);
    string_view t;
    for (int i = 0; i < 4; i++) {
      if (!toks.next(t) || !to_num(t, out[i])) fail("bad {} '{}'", key, trim(v));
    }
    if (toks.next(t)) fail("bad {} '{}'", key, trim(v));
  };
  auto hex = [](string_view v, string_view key) {
    uint64_t x = 0;
    if (!to_num(trim(v), x, 16)) fail("bad {} '{}'", key, trim(v));
    return x;
  };
  auto dec = [](string_view v, string_view key) {
    int64_t x = 0;
    if (!to_num(trim(v), x)) fail("bad {} '{}'", key, trim(v));
    return x;
  };

  Lines lines(text);
  string_view line;
  while (lines.next(line)) {
    string_view key, v;
    if (!split_key(line, key, v)) continue;
    if (key == "Name") {
      // The name is everything after the tab, spaces included.
      if (!v.empty() && v.front() == '\t') v.remove_prefix(1);
      s.name.assign(v);
      have_name = true;
    } else if (key == "State") {
      v = trim(v);
      if (v.empty()) fail("bad State ''");
      s.state = v[0];
      have_state = true;
    } else if (key == "Umask") {
      if (!to_num(trim(v), s.umask, 8)) fail("bad Umask '{}'", trim(v));
    } else if (key == "Tgid") {
      s.tgid = static_cast<pid_t>(dec(v, key));
    } else if (key == "Pid") {
      s.pid = static_cast<pid_t>(dec(v, key));
      have_pid = true;
    } else if (key == "PPid") {
      s.ppid = static_cast<pid_t>(dec(v, key));
    } else if (key == "TracerPid") {
      s.tracer_pid = static_cast<pid_t>(dec(v, key));
    } else if (key == "Uid") {
      ids4(v, s.uid, key);
      have_uid = true;
    } else if (key == "Gid") {
      ids4(v, s.gid, key);
      have_gid = true;
    } else if (key == "Groups") {
      s.groups = parse_list<uint32_t>(v, "Groups");
    } else if (key == "NStgid") {
      s.nstgid = parse_list<pid_t>(v, "NStgid");
    } else if (key == "Threads") {
      s.threads = static_cast<int>(dec(v, key));
    } else if (key == "SigPnd") {
      s.sig_pnd = hex(v, key);
    } else if (key == "ShdPnd") {
      s.shd_pnd = hex(v, key);
    } else if (key == "SigBlk") {
      s.sig_blk = hex(v, key);
    } else if (key == "SigIgn") {
      s.sig_ign = hex(v, key);
    } else if (key == "SigCgt") {
      s.sig_cgt = hex(v, key);
    } else if (key == "CapInh") {
      s.cap_inh = hex(v, key);
    } else if (key == "CapPrm") {
      s.cap_prm = hex(v, key);
    } else if (key == "CapEff") {
      s.cap_eff = hex(v, key);
    } else if (key == "CapBnd") {
      s.cap_bnd = hex(v, key);
    } else if (key == "CapAmb") {
      s.cap_amb = hex(v, key);
    } else if (key == "NoNewPrivs") {
      s.no_new_privs = static_cast<int>(dec(v, key));
    } else if (key == "Seccomp") {
      s.seccomp = static_cast<int>(dec(v, key));
    }
  }
  if (!have_name || !have_state || !have_pid || !have_uid || !have_gid)
    fail("missing one of Name, State, Pid, Uid, Gid");
  return s;
}

Status read_status(pid_t pid) {
  return parse_file(pid_path(pid, "status"), parse_status);
}

// ---- smaps / maps ----------------------------------------------------------------------

bool Vma::has_flag(const char* f) const {
  return std::find(vm_flags.begin(), vm_flags.end(), f) != vm_flags.end();
}

std::vector<Vma> parse_smaps(const std::string& text) {
  return parse_vmas(text, true);
}
std::vector<Vma> parse_maps(const std::string& text) {
  return parse_vmas(text, false);
}

std::vector<Vma> read_smaps(pid_t pid) {
  return parse_file(pid_path(pid, "smaps"), parse_smaps);
}
std::vector<Vma> read_maps(pid_t pid) {
  return parse_file(pid_path(pid, "maps"), parse_maps);
}

// ---- fdinfo ----------------------------------------------------------------------------

FdInfo parse_fdinfo(const std::string& text) {
  FdInfo fi;
  bool have_pos = false, have_flags = false;
  Lines lines(text);
  string_view line;
  while (lines.next(line)) {
    string_view key, v;
    if (!split_key(line, key, v)) continue;
    v = trim(v);
    if (key == "pos") {
      fi.pos = num_or_fail<uint64_t>(v, "pos");
      have_pos = true;
    } else if (key == "flags") {
      fi.flags = num_or_fail<uint32_t>(v, "flags", 8);
      have_flags = true;
    } else if (key == "mnt_id") {
      fi.mnt_id = num_or_fail<int>(v, "mnt_id");
    } else if (key == "ino") {
      fi.ino = num_or_fail<uint64_t>(v, "ino");
    } else if (key == "lock") {
      fi.locks.push_back(parse_lock_line(std::string(v)));
    }
  }
  if (!have_pos || !have_flags) fail("missing pos or flags");
  return fi;
}

FdInfo read_fdinfo(pid_t pid, int fd) {
  return parse_file(fmt::format("/proc/{}/fdinfo/{}", pid, fd), parse_fdinfo);
}

// ---- locks -----------------------------------------------------------------------------

FileLock parse_lock_line(const std::string& text) {
  FileLock l;
  Tokens tk(text);
  string_view t;
  auto need = [&](const char* what) {
    if (!tk.next(t)) fail("no {} in lock line '{}'", what, text);
    return t;
  };
  string_view id = need("id");
  if (id.empty() || id.back() != ':') fail("bad id '{}' in lock line '{}'", id, text);
  string_view kind = need("kind");
  // A waiting request is indented by its depth and marked "-> ".
  if (kind.starts_with("->")) {
    l.blocked = true;
    kind.remove_prefix(2);
    if (kind.empty()) kind = need("kind");
  }
  l.kind = std::string(kind);
  l.mode = std::string(need("mode"));
  l.type = std::string(need("type"));
  l.pid = num_or_fail<pid_t>(need("pid"), "lock pid");
  string_view dev = need("device");
  if (dev != "<none>:0") {
    size_t c1 = dev.find(':');
    size_t c2 = c1 == string_view::npos ? c1 : dev.find(':', c1 + 1);
    if (c2 == string_view::npos) fail("bad device:inode '{}' in lock line '{}'", dev, text);
    l.dev_major = num_or_fail<uint32_t>(dev.substr(0, c1), "lock device major", 16);
    l.dev_minor = num_or_fail<uint32_t>(dev.substr(c1 + 1, c2 - c1 - 1), "lock device minor", 16);
    l.ino = num_or_fail<uint64_t>(dev.substr(c2 + 1), "lock inode");
  }
  l.start = num_or_fail<int64_t>(need("start"), "lock start");
  string_view end = need("end");
  l.end = end == "EOF" ? -1 : num_or_fail<int64_t>(end, "lock end");
  return l;
}

std::vector<FileLock> parse_locks(const std::string& text) {
  std::vector<FileLock> out;
  Lines lines(text);
  string_view line;
  while (lines.next(line))
    if (!trim(line).empty()) out.push_back(parse_lock_line(std::string(line)));
  return out;
}

std::vector<FileLock> read_locks() {
  return parse_file("/proc/locks", parse_locks);
}

// ---- limits ----------------------------------------------------------------------------

std::vector<Limit> parse_limits(const std::string& text) {
  std::vector<Limit> out;
  Lines lines(text);
  string_view line;
  while (lines.next(line)) {
    if (trim(line).empty() || line.starts_with("Limit")) continue;  // header
    // "Max nice priority  0  0" or "Max cpu time  unlimited  unlimited  seconds": read the
    // tokens from the right, the names contain spaces.
    string_view toks[16];
    size_t n = 0;
    Tokens tk(line);
    string_view t;
    while (tk.next(t)) {
      if (n == std::size(toks)) fail("too many columns in '{}'", line);
      toks[n++] = t;
    }
    if (n < 3) fail("bad limits row '{}'", line);
    size_t hard = is_rlim_value(toks[n - 1]) ? n - 1 : n - 2;
    if (hard < 2) fail("bad limits row '{}'", line);
    out.push_back({parse_rlim(toks[hard - 1]), parse_rlim(toks[hard])});
  }
  if (out.size() < 16) fail("only {} rows, expected 16", out.size());
  return out;
}

std::vector<Limit> read_limits(pid_t pid) {
  return parse_file(pid_path(pid, "limits"), parse_limits);
}

// ---- helpers ---------------------------------------------------------------------------

namespace {

// Reads an open fd until EOF. /proc files report size 0, so read in growing chunks.
std::string read_all(int fd, const std::string& path) {
  std::string buf;
  struct stat st;
  size_t cap = 64 * 1024;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) cap = static_cast<size_t>(st.st_size) + 1;
  buf.resize(cap);
  size_t len = 0;
  for (;;) {
    if (len == buf.size()) buf.resize(buf.size() * 2);
    ssize_t r = ::read(fd, buf.data() + len, buf.size() - len);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail_sys("cannot read {}", path);
    }
    if (r == 0) break;
    len += static_cast<size_t>(r);
  }
  buf.resize(len);
  return buf;
}

}  // namespace

std::string read_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) fail_sys("cannot read {}", path);
  return read_all(fd.get(), path);
}

std::optional<std::string> try_read_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    fail_sys("cannot read {}", path);
  }
  return read_all(fd.get(), path);
}

std::string read_link(const std::string& path) {
  std::string buf(256, '\0');
  for (;;) {
    ssize_t r = ::readlink(path.c_str(), buf.data(), buf.size());
    if (r < 0) fail_sys("cannot readlink {}", path);
    if (static_cast<size_t>(r) < buf.size()) {
      buf.resize(static_cast<size_t>(r));
      return buf;
    }
    buf.resize(buf.size() * 2);  // possibly truncated: retry with more room
  }
}

std::vector<int> list_dir_numbers(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) fail_sys("cannot open directory {}", path);
  std::unique_ptr<DIR, DirCloser> dir(::fdopendir(fd.get()));
  if (!dir) fail_sys("cannot open directory {}", path);
  fd.release();  // now owned by dir
  std::vector<int> out;
  for (;;) {
    errno = 0;
    struct dirent* de = ::readdir(dir.get());
    if (!de) {
      if (errno != 0) fail_sys("cannot read directory {}", path);
      break;
    }
    string_view name(de->d_name);
    if (name.empty() ||
        !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    int v;
    if (to_num(name, v)) out.push_back(v);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<pid_t> read_children(pid_t pid, pid_t tid) {
  std::string path = fmt::format("/proc/{}/task/{}/children", pid, tid);
  std::string text = read_file(path);
  try {
    return parse_list<pid_t>(text, "pid");
  } catch (const Error& e) {
    fail("cannot parse {}: {}", path, e.what());
  }
}

std::vector<pid_t> read_threads(pid_t pid) {
  std::vector<int> v = list_dir_numbers(fmt::format("/proc/{}/task", pid));
  return std::vector<pid_t>(v.begin(), v.end());
}

TimensOffsets parse_timens_offsets(const std::string& text) {
  TimensOffsets o;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    char name[32] = "";
    long long sec = 0, nsec = 0;
    if (std::sscanf(line.c_str(), "%31s %lld %lld", name, &sec, &nsec) != 3) continue;
    const int64_t ns = static_cast<int64_t>(sec) * 1000000000 + nsec;
    if (std::string(name) == "monotonic" || std::string(name) == "1")
      o.monotonic_ns = ns;
    else if (std::string(name) == "boottime" || std::string(name) == "7")
      o.boottime_ns = ns;
  }
  return o;
}

TimensOffsets read_timens_offsets(pid_t pid) {
  return parse_timens_offsets(read_file(fmt::format("/proc/{}/timens_offsets", pid)));
}

std::string socket_holder(uint32_t ino) {
  const std::string want = fmt::format("socket:[{}]", ino);
  for (int pid : list_dir_numbers("/proc")) {
    std::string base = fmt::format("/proc/{}/fd", pid);
    std::vector<int> fds;
    try {
      fds = list_dir_numbers(base);
    } catch (const Error&) {
      continue;  // gone, or not ours to read
    }
    for (int fd : fds) {
      char link[64];
      ssize_t n = ::readlink(fmt::format("{}/{}", base, fd).c_str(), link, sizeof link);
      if (n > 0 && want.compare(0, want.size(), link, static_cast<size_t>(n)) == 0) {
        std::string comm = "?";
        try {
          comm = read_file(fmt::format("/proc/{}/comm", pid));
          if (!comm.empty() && comm.back() == '\n') comm.pop_back();
        } catch (const Error&) {
        }
        return fmt::format("held by task {} ({}) fd {}", pid, comm, fd);
      }
    }
  }
  return "held by no process found in /proc";
}

}  // namespace cryo::proc
