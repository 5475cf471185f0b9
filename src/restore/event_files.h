// eventfd, timerfd and signalfd, created in cryo with their dumped state.
#pragma once

#include "base/fd.h"
#include "image/fdinfo.h"

namespace cryo::restore {

Fd open_eventfd(const eventfd_file_entry& e);
Fd open_timerfd(const timerfd_entry& t);
Fd open_signalfd(const signalfd_entry& s);
// An empty epoll instance: its registrations are made by the task (see restore_files), as
// epoll keys them by the task's own fd numbers.
Fd open_eventpoll(const eventpoll_file_entry& e);

}  // namespace cryo::restore
