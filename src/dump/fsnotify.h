// inotify and fanotify groups. Their watches (marks) come from /proc/PID/fdinfo/FD; each
// watched inode is saved with its file handle and, in fh_entry.path as CRIU does, a path that
// names it now (found with open_by_handle_at): restore watches that path again. Events still
// queued in the group are lost, as with CRIU: the dump says so in a warning.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "dump/file_kind.h"
#include "image/fdinfo.h"

namespace cryo::dump {

void dump_inotify(FdContext& c, uint32_t id, file_entry* e);
void dump_fanotify(FdContext& c, uint32_t id, file_entry* e);

// The "key:value" words of each fdinfo line that starts with `prefix` and a space, in order
// ("inotify wd:3 ino:1a sdev:..." -> {wd: 3, ino: 1a, sdev: ...}).
using FdinfoRecord = std::map<std::string, std::string>;
std::vector<FdinfoRecord> fdinfo_records(const std::string& text, const std::string& prefix);

}  // namespace cryo::dump
