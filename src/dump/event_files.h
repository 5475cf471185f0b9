// eventfd, timerfd and signalfd: their whole state is in /proc/PID/fdinfo/FD.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "image/fdinfo.h"

namespace cryo::dump {

// `fdinfo` is the text of /proc/PID/fdinfo/FD; `flags` the file's status flags.
void dump_eventfd(const std::string& fdinfo, uint32_t id, uint32_t flags, file_entry* e);
void dump_timerfd(const std::string& fdinfo, uint32_t id, uint32_t flags, file_entry* e);
void dump_signalfd(const std::string& fdinfo, uint32_t id, uint32_t flags, file_entry* e);
// A registration of an epoll instance whose fd number no longer holds the watched file in
// the task (closed, or reused for another file): the file is found later, by kcmp.
struct DetachedTarget {
  int tfd_index;  // in e->epfd().tfd()
  uint32_t tfd;
  uint32_t toff;  // which of the registrations under this fd number
};
// An epoll instance of task `pid` at fd `epfd`.
std::vector<DetachedTarget> dump_eventpoll(pid_t pid, int epfd, const std::string& fdinfo,
                                           uint32_t id, uint32_t flags, file_entry* e);

// An empty owner (F_SETOWN) record: cryo does not dump file owners yet.
fown_entry* zero_fown(fown_entry* f);

// The value of "key:" in an fdinfo text, trimmed; empty if absent.
std::string fdinfo_field(const std::string& text, const std::string& key);

}  // namespace cryo::dump
