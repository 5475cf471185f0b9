// inotify and fanotify groups, created in cryo with their watches (marks) on the paths saved
// at dump time. inotify watches get their saved wd numbers back.
#pragma once

#include "base/fd.h"
#include "image/fdinfo.h"

namespace cryo::restore {

Fd open_inotify(const inotify_file_entry& e);
Fd open_fanotify(const fanotify_file_entry& e);

}  // namespace cryo::restore
