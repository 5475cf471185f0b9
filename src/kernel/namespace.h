// Namespaces seen through nsfs (/proc/PID/ns/KIND), and work done inside one of them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cryo::kernel {

// The inode that names namespace `path` (/proc/PID/ns/KIND).
uint64_t ns_inode(const std::string& path);

// Runs `fn` in a short-lived thread of cryo that first joined the namespace of kind `cflag`
// (a CLONE_NEW* flag) that `path` names: cryo's other threads stay where they are. A mount
// namespace is joined after the thread leaves cryo's fs information; kinds a thread cannot
// join alone (pid, user) are not for this. Exceptions of `fn` are rethrown.
void in_namespace(const std::string& path, int cflag, const std::function<void()>& fn);

// The NSpid line of a /proc/.../status file: the task's PID in each pid namespace from the
// reader's down to its own.
std::vector<pid_t> ns_pids(const std::string& status_path);

}  // namespace cryo::kernel
