#include "proc/mountinfo.h"

#include <cstdlib>
#include <sstream>

#include "base/error.h"
#include "proc/proc.h"

namespace cryo::proc {
namespace {

// mountinfo writes space, tab, newline and backslash in paths as \ooo.
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && s.size() - i >= 4 && s[i + 1] >= '0' && s[i + 1] <= '3') {
      out += static_cast<char>(std::strtol(s.substr(i + 1, 3).c_str(), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

uint32_t tag_value(const std::string& field, const char* tag) {
  const std::string t = tag;
  if (field.compare(0, t.size(), t) != 0) return 0;
  return static_cast<uint32_t>(std::strtoul(field.c_str() + t.size(), nullptr, 10));
}

Mount parse_line(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  size_t dash = 6;
  while (dash < w.size() && w[dash] != "-") dash++;
  // The super options may be missing (an empty field) on old kernels.
  if (dash + 2 >= w.size()) fail("mountinfo line does not parse: {}", line);
  Mount m;
  m.id = static_cast<uint32_t>(std::strtoul(w[0].c_str(), nullptr, 10));
  m.parent = static_cast<uint32_t>(std::strtoul(w[1].c_str(), nullptr, 10));
  char* end = nullptr;
  m.major = static_cast<uint32_t>(std::strtoul(w[2].c_str(), &end, 10));
  if (!end || *end != ':') fail("mountinfo line does not parse (device): {}", line);
  m.minor = static_cast<uint32_t>(std::strtoul(end + 1, nullptr, 10));
  m.root = unescape(w[3]);
  m.mountpoint = unescape(w[4]);
  m.mount_opts = w[5];
  for (size_t i = 6; i < dash; i++) {
    if (uint32_t v = tag_value(w[i], "shared:")) m.shared = v;
    if (uint32_t v = tag_value(w[i], "master:")) m.master = v;
  }
  m.fstype = w[dash + 1];
  m.source = unescape(w[dash + 2]);
  m.super_opts = dash + 3 < w.size() ? w[dash + 3] : "";
  return m;
}

}  // namespace

std::vector<Mount> parse_mountinfo(const std::string& text) {
  std::vector<Mount> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(parse_line(line));
  return out;
}

std::vector<Mount> read_mountinfo(pid_t pid) {
  return parse_mountinfo(read_file(fmt::format("/proc/{}/mountinfo", pid)));
}

}  // namespace cryo::proc
