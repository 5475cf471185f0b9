// The cgroups of a task (/proc/PID/cgroup) and where each hierarchy is mounted
// (/proc/self/mountinfo), named as CRIU's cgroup images name them.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cryo::proc {

// The name of the cgroup v2 hierarchy in CRIU's images.
inline constexpr const char* kUnifiedHierarchy = "unified";

// One line of /proc/PID/cgroup: a hierarchy and the task's cgroup in it.
struct CgroupMember {
  std::string name;  // its controllers ("memory", "cpu,cpuacct", "name=systemd") or "unified"
  std::string path;  // from the hierarchy's root, starting with '/'
  bool operator==(const CgroupMember&) const = default;
};
std::vector<CgroupMember> parse_cgroup(std::string_view text);
// /proc/PID/task/TID/cgroup (tid 0: /proc/PID/cgroup).
std::vector<CgroupMember> read_cgroup(pid_t pid, pid_t tid = 0);

// Hierarchy name -> the directory of its root, for the cgroup and cgroup2 mounts of a
// mountinfo text that show a hierarchy from its root (the first one found).
std::map<std::string, std::string> parse_cgroup_mounts(std::string_view mountinfo);

// The directory of a cgroup: the hierarchy's mount point and `path`; fails, naming the
// hierarchy, when it is not mounted here.
class CgroupMounts {
 public:
  CgroupMounts();  // reads /proc/self/mountinfo
  bool has(const std::string& hierarchy) const { return mounts_.count(hierarchy) != 0; }
  std::string dir(const std::string& hierarchy, const std::string& path = "/") const;
  const std::map<std::string, std::string>& all() const { return mounts_; }

 private:
  std::map<std::string, std::string> mounts_;
};

// The names of a hierarchy's controllers: "cpu,cpuacct" -> {"cpu", "cpuacct"}.
std::vector<std::string> cgroup_controllers(const std::string& hierarchy);

}  // namespace cryo::proc

namespace cryo::proc {
// Writes `value` to a cgroup file with one write(2), as the kernel wants; returns 0 or the
// errno of the failure.
int write_cgroup_file(const std::string& path, const std::string& value);
// A cgroup file's content without its final newline; nullopt when it cannot be read.
std::optional<std::string> read_cgroup_file(const std::string& path);
// A property's value as images keep it: what a write sets. "memory.oom_control" reads
// "oom_kill_disable 0\nunder_oom 0\n...", of which only the first can be set.
std::string cgroup_prop_value(const std::string& name, std::string value);
}  // namespace cryo::proc
