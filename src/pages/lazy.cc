#include "pages/lazy.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "base/error.h"
#include "image/image.h"
#include "image/pagemap.h"
#include "proc/proc.h"

namespace cryo::pages {

bool lazy_vma(const vma_entry& v) {
  constexpr uint32_t kSpecial = image::kVmaVdso | image::kVmaVvar | image::kVmaVsyscall |
                                image::kVmaSysvipc | image::kVmaSocket | image::kVmaAioring;
  return (v.status() & image::kVmaAnonPrivate) && !(v.status() & kSpecial) &&
         (v.flags() & MAP_PRIVATE) && !(v.flags() & (MAP_LOCKED | image::kVmaHugetlbFlags)) &&
         !v.cryo_lock_onfault();
}

bool on_source(const pagemap_entry& e) {
  return (e.flags() & image::kPeLazy) && !(e.flags() & image::kPePresent) && !image::in_parent(e);
}

void send_task(int sock, pid_t pid, int uffd) {
  iovec iov{&pid, sizeof pid};
  msghdr h{};
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  if (uffd >= 0) {
    h.msg_control = ctl;
    h.msg_controllen = sizeof ctl;
    cmsghdr* c = CMSG_FIRSTHDR(&h);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &uffd, sizeof uffd);
  }
  if (::sendmsg(sock, &h, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof pid))
    fail_sys("cannot hand the userfaultfd of task {} to the lazy-pages daemon", pid);
}

bool recv_task(int sock, pid_t* pid, Fd* uffd) {
  *pid = 0;
  uffd->reset();
  iovec iov{pid, sizeof *pid};
  msghdr h{};
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  h.msg_control = ctl;
  h.msg_controllen = sizeof ctl;
  ssize_t n;
  do n = ::recvmsg(sock, &h, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) fail_sys("cannot read from the restore's connection");
  for (cmsghdr* c = n > 0 ? CMSG_FIRSTHDR(&h) : nullptr; c; c = CMSG_NXTHDR(&h, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int))) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
      uffd->reset(fd);
    }
  return n == static_cast<ssize_t>(sizeof *pid) && !(h.msg_flags & MSG_CTRUNC);
}

std::string socket_path(const std::string& work_dir) {
  return (work_dir.empty() ? std::string(".") : work_dir) + "/" + kLazySocket;
}

void kill_tree(pid_t pid) {
  // Stopped first, so that none forks a child the walk misses; then killed.
  std::vector<pid_t> all{pid};
  for (size_t i = 0; i < all.size(); i++) {
    ::kill(all[i], SIGSTOP);
    std::error_code ec;
    for (const auto& t :
         std::filesystem::directory_iterator(fmt::format("/proc/{}/task", all[i]), ec)) {
      pid_t tid = static_cast<pid_t>(std::atoi(t.path().filename().c_str()));
      try {
        for (pid_t c : proc::read_children(all[i], tid)) all.push_back(c);
      } catch (const Error&) {
      }
    }
  }
  for (pid_t p : all) ::kill(p, SIGKILL);
}

}  // namespace cryo::pages
