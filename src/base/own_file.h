// cryo's own output files (logs, pidfiles, images): created fresh, mode 0600, never opened
// through a symbolic link or a file someone else left at their path. cryo runs as root:
// following a link planted in a writable directory would let anyone overwrite any file.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/fd.h"

namespace cryo {

// "a FIFO", "a directory", "a symbolic link", ... for messages.
std::string file_type_name(mode_t mode);

// Creates `path` for writing with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600. Anything already
// there (a file, a symlink, even a dangling one) is an error naming `what` and the path and
// saying to remove it.
Fd create_new_file(const std::string& path, const std::string& what);

// Creates `path` for writing like create_new_file, after removing what an earlier run may
// have left there: a file or a symlink is unlinked (the link itself, never its target), a
// directory is an error.
Fd recreate_file(const std::string& path, const std::string& what);

// Opens `path` for writing, truncated (as CRIU does with its logs), creating it (mode 0600)
// when missing. An existing one must be a regular file owned by cryo's effective uid with a
// single link; a symlink, another user's file, a device or a FIFO is refused.
Fd open_own_file(const std::string& path, const std::string& what);

}  // namespace cryo
