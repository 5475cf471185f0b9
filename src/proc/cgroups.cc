#include "proc/cgroups.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>

#include "base/error.h"
#include "proc/proc.h"

namespace cryo::proc {
namespace {

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t at = 0;
  for (;;) {
    size_t end = s.find(sep, at);
    out.emplace_back(s.substr(at, end == std::string_view::npos ? end : end - at));
    if (end == std::string_view::npos) return out;
    at = end + 1;
  }
}

// The controllers a v1 mount's super options name ("rw,cpu,cpuacct" -> cpu, cpuacct), in
// the order /proc/PID/cgroup lists them.
std::string hierarchy_of(const std::string& super_opts) {
  static const std::set<std::string> kNotControllers = {
      "rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode", "favordynmods"};
  std::vector<std::string> names;
  for (const std::string& o : split(super_opts, ',')) {
    if (kNotControllers.count(o) || o.starts_with("release_agent=")) continue;
    names.push_back(o);
  }
  std::sort(names.begin(), names.end());
  std::string r;
  for (const std::string& n : names) r += (r.empty() ? "" : ",") + n;
  return r;
}

// mountinfo writes a space, tab, newline or backslash of a path as \NNN (octal).
std::string unescape_octal(const std::string& s) {
  std::string r;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
      r += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      r += s[i];
    }
  }
  return r;
}

std::string sorted_name(const std::string& hierarchy) {
  std::vector<std::string> names = cgroup_controllers(hierarchy);
  std::sort(names.begin(), names.end());
  std::string r;
  for (const std::string& n : names) r += (r.empty() ? "" : ",") + n;
  return r;
}

}  // namespace

std::vector<CgroupMember> parse_cgroup(std::string_view text) {
  std::vector<CgroupMember> out;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    size_t a = line.find(':');
    size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) fail("bad cgroup line '{}': expected ID:CONTROLLERS:PATH", line);
    CgroupMember m;
    m.name = line.substr(a + 1, b - a - 1);
    m.path = line.substr(b + 1);
    if (m.name.empty()) m.name = kUnifiedHierarchy;
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<CgroupMember> read_cgroup(pid_t pid, pid_t tid) {
  return parse_cgroup(read_file(tid ? fmt::format("/proc/{}/task/{}/cgroup", pid, tid)
                                    : fmt::format("/proc/{}/cgroup", pid)));
}

std::map<std::string, std::string> parse_cgroup_mounts(std::string_view mountinfo) {
  std::map<std::string, std::string> out;
  std::istringstream in{std::string(mountinfo)};
  std::string line;
  while (std::getline(in, line)) {
    // ID PARENT MAJ:MIN ROOT POINT OPTIONS [TAGS...] - FSTYPE SOURCE SUPER_OPTIONS
    std::vector<std::string> f = split(line, ' ');
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 5 || dash == f.end() || f.end() - dash < 4) continue;
    const std::string& fstype = dash[1];
    if (f[3] != "/" || (fstype != "cgroup" && fstype != "cgroup2")) continue;
    std::string name = fstype == "cgroup2" ? kUnifiedHierarchy : hierarchy_of(dash[3]);
    out.emplace(name, unescape_octal(f[4]));
  }
  return out;
}

CgroupMounts::CgroupMounts() : mounts_(parse_cgroup_mounts(read_file("/proc/self/mountinfo"))) {}

std::string CgroupMounts::dir(const std::string& hierarchy, const std::string& path) const {
  auto it = mounts_.find(hierarchy == kUnifiedHierarchy ? hierarchy : sorted_name(hierarchy));
  if (it == mounts_.end())
    fail(
        "the cgroup hierarchy '{}' is not mounted here (no cgroup mount of it in "
        "/proc/self/mountinfo): mount it, or use --manage-cgroups=ignore",
        hierarchy);
  return path == "/" ? it->second : it->second + path;
}

std::vector<std::string> cgroup_controllers(const std::string& hierarchy) {
  return split(hierarchy, ',');
}

}  // namespace cryo::proc

namespace cryo::proc {

int write_cgroup_file(const std::string& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = n < 0 ? errno : (static_cast<size_t>(n) == value.size() ? 0 : EIO);
  if (::close(fd) < 0 && !err) err = errno;
  return err;
}

std::optional<std::string> read_cgroup_file(const std::string& path) {
  std::optional<std::string> s;
  try {
    s = try_read_file(path);
  } catch (const Error&) {
    return std::nullopt;  // EINVAL, EOPNOTSUPP: a file that exists but cannot be read
  }
  if (s && !s->empty() && s->back() == '\n') s->pop_back();
  return s;
}

std::string cgroup_prop_value(const std::string& name, std::string value) {
  constexpr std::string_view kOom = "oom_kill_disable ";
  if (name == "memory.oom_control" && value.starts_with(kOom)) {
    value = value.substr(kOom.size());
    return value.substr(0, value.find('\n'));
  }
  return value;
}

}  // namespace cryo::proc
