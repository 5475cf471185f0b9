#include "dump/event_files.h"

#include <cinttypes>
#include <cstdio>
#include <map>

#include <sys/stat.h>

#include <sys/timerfd.h>

#include "base/error.h"
#include "base/log.h"
#include "dump/file_kind.h"
#include "dump/files.h"
#include "kernel/syscalls.h"

namespace cryo::dump {
namespace {

std::string need(const std::string& text, const std::string& key, uint32_t id) {
  std::string v = fdinfo_field(text, key);
  if (v.empty()) fail("file {}: no '{}' in its fdinfo (kernel too old?)", id, key);
  return v;
}

}  // namespace

fown_entry* zero_fown(fown_entry* f) {
  f->set_uid(0);
  f->set_euid(0);
  f->set_signum(0);
  f->set_pid_type(0);
  f->set_pid(0);
  return f;
}

std::string fdinfo_field(const std::string& text, const std::string& key) {
  size_t p = 0;
  while ((p = text.find(key + ":", p)) != std::string::npos) {
    if (p == 0 || text[p - 1] == '\n') break;
    p++;
  }
  if (p == std::string::npos) return "";
  p += key.size() + 1;
  size_t e = text.find('\n', p);
  std::string v = text.substr(p, e == std::string::npos ? std::string::npos : e - p);
  size_t b = v.find_first_not_of(" \t");
  return b == std::string::npos ? "" : v.substr(b);
}

void dump_eventfd(const std::string& text, uint32_t id, uint32_t flags, file_entry* e) {
  auto* ev = e->mutable_efd();
  ev->set_id(id);
  uint32_t f = flags;
  if (fdinfo_field(text, "eventfd-semaphore") == "1") f |= 1;  // EFD_SEMAPHORE
  ev->set_flags(f);
  zero_fown(ev->mutable_fown());
  ev->set_counter(std::stoull(need(text, "eventfd-count", id), nullptr, 16));
}

void dump_timerfd(const std::string& text, uint32_t id, uint32_t flags, file_entry* e) {
  auto* t = e->mutable_tfd();
  t->set_id(id);
  t->set_flags(flags);
  zero_fown(t->mutable_fown());
  t->set_clockid(static_cast<uint32_t>(std::stoul(need(text, "clockid", id))));
  t->set_ticks(std::stoull(need(text, "ticks", id)));
  t->set_settime_flags(
      static_cast<uint32_t>(std::stoul(need(text, "settime flags", id), nullptr, 8)));
  uint64_t vs = 0, vn = 0, is = 0, in = 0;
  if (std::sscanf(need(text, "it_value", id).c_str(), "(%" SCNu64 ", %" SCNu64 ")", &vs, &vn) !=
          2 ||
      std::sscanf(need(text, "it_interval", id).c_str(), "(%" SCNu64 ", %" SCNu64 ")", &is, &in) !=
          2)
    fail("file {}: cannot parse the timerfd setting in its fdinfo", id);
  t->set_vsec(vs);
  t->set_vnsec(vn);
  t->set_isec(is);
  t->set_insec(in);
}

void dump_signalfd(const std::string& text, uint32_t id, uint32_t flags, file_entry* e) {
  auto* s = e->mutable_sgfd();
  s->set_id(id);
  s->set_flags(flags);
  zero_fown(s->mutable_fown());
  s->set_sigmask(std::stoull(need(text, "sigmask", id), nullptr, 16));
}

std::vector<DetachedTarget> dump_eventpoll(pid_t pid, int epfd, const std::string& text,
                                           uint32_t id, uint32_t flags, file_entry* e) {
  auto* ep = e->mutable_epfd();
  ep->set_id(id);
  ep->set_flags(flags);
  zero_fown(ep->mutable_fown());
  std::vector<DetachedTarget> detached;
  std::map<int, uint32_t> seen;  // fd number -> registrations under it so far
  size_t pos = 0;
  while ((pos = text.find("tfd:", pos)) != std::string::npos) {
    int tfd = 0;
    unsigned events = 0;
    unsigned long long data = 0, ino = 0;
    long long fpos = 0;
    unsigned sdev = 0;
    if (std::sscanf(text.c_str() + pos, "tfd: %d events: %x data: %llx pos:%lli ino:%llx sdev:%x",
                    &tfd, &events, &data, &fpos, &ino, &sdev) < 3)
      fail("task {}: cannot parse an epoll registration in its fdinfo", pid);
    pos += 4;
    auto* t = ep->add_tfd();
    t->set_id(id);
    t->set_tfd(static_cast<uint32_t>(tfd));
    t->set_events(events);
    t->set_data(data);
    t->set_dev(sdev);
    t->set_inode(ino);
    // Registrations are ordered by file, then fd number: toff counts earlier ones under tfd.
    kernel::KcmpEpollSlot slot{static_cast<uint32_t>(epfd), static_cast<uint32_t>(tfd),
                               seen[tfd]++};
    long same = kernel::kcmp(pid, pid, kernel::kKcmpEpollTfd, static_cast<unsigned long>(tfd),
                             reinterpret_cast<unsigned long>(&slot));
    if (same != 0) detached.push_back({ep->tfd_size() - 1, static_cast<uint32_t>(tfd), slot.toff});
  }
  return detached;
}

namespace {

class EventfdKind : public FileKind {
 public:
  fd_types type() const override { return EVENTFD; }
  bool claims(FdContext& c) override { return c.link == "anon_inode:[eventfd]"; }
  void dump(FdContext& c, uint32_t id, file_entry* e) override {
    dump_eventfd(c.fdinfo, id, c.flags, e);
  }
};

class TimerfdKind : public FileKind {
 public:
  fd_types type() const override { return TIMERFD; }
  bool claims(FdContext& c) override { return c.link == "anon_inode:[timerfd]"; }
  void dump(FdContext& c, uint32_t id, file_entry* e) override {
    // An expired periodic timerfd counts its missed expirations and re-arms only when
    // asked: timerfd_gettime on a copy does that, without consuming them.
    itimerspec its;
    if (::timerfd_gettime(c.copy(), &its) < 0) fail_sys("{}: cannot read the timer", c.where());
    c.reread_fdinfo();
    dump_timerfd(c.fdinfo, id, c.flags, e);
  }
};

class SignalfdKind : public FileKind {
 public:
  fd_types type() const override { return SIGNALFD; }
  bool claims(FdContext& c) override { return c.link == "anon_inode:[signalfd]"; }
  void dump(FdContext& c, uint32_t id, file_entry* e) override {
    dump_signalfd(c.fdinfo, id, c.flags, e);
  }
};

class EventpollKind : public FileKind {
 public:
  fd_types type() const override { return EVENTPOLL; }
  bool claims(FdContext& c) override { return c.link == "anon_inode:[eventpoll]"; }
  void dump(FdContext& c, uint32_t id, file_entry* e) override {
    for (const DetachedTarget& d : dump_eventpoll(c.pid, c.fd, c.fdinfo, id, c.flags, e))
      detached_.push_back({id, d, c.pid, c.fd});
  }
  // A registration whose fd number was closed or reused still watches its file, which some
  // fd of the tree holds: find which, so restore can register it again.
  void finish(FileTable& table, const DumpEnd&) override {
    for (const Detached& d : detached_) {
      kernel::KcmpEpollSlot slot{static_cast<uint32_t>(d.epfd), d.target.tfd, d.target.toff};
      uint32_t found = table.epoll_target(d.pid, slot);
      if (!found)
        fail(
            "task {}: epoll fd {} watches a file registered as fd {}, which was closed since, "
            "and no fd of the dumped tree holds that file any more: not supported",
            d.pid, d.epfd, d.target.tfd);
      table.entry(d.id).mutable_epfd()->mutable_tfd(d.target.tfd_index)->set_cryo_target_id(found);
      log::debug("task {}: epoll fd {} watches closed fd {}: file {}", d.pid, d.epfd, d.target.tfd,
                 found);
    }
    detached_.clear();
  }

 private:
  struct Detached {
    uint32_t id;  // the epoll's file
    DetachedTarget target;
    pid_t pid;
    int epfd;
  };
  std::vector<Detached> detached_;
};

}  // namespace

std::unique_ptr<FileKind> make_eventfd_kind(FileTable&) {
  return std::make_unique<EventfdKind>();
}
std::unique_ptr<FileKind> make_timerfd_kind(FileTable&) {
  return std::make_unique<TimerfdKind>();
}
std::unique_ptr<FileKind> make_signalfd_kind(FileTable&) {
  return std::make_unique<SignalfdKind>();
}
std::unique_ptr<FileKind> make_eventpoll_kind(FileTable&) {
  return std::make_unique<EventpollKind>();
}

}  // namespace cryo::dump
