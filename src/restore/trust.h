// Who may restore what: the images say which programs the restored tasks run and with which
// uids and capabilities, and cryo restores them as root. Images anyone else could have
// written are not trusted.
#pragma once

#include <string>

namespace cryo::restore {

// Refuses, naming the path, its owner and mode, and the fix: an images directory that is not
// owned by cryo's effective uid or is writable by group or others, and any image in it
// (*.img, stats-*) that is a symlink, not a regular file, owned by another uid, or writable
// by group or others. Called before any process is created.
void check_images_trusted(const std::string& dir);

}  // namespace cryo::restore
