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
  if (send_fd(sock, &pid, sizeof pid, uffd) != static_cast<ssize_t>(sizeof pid))
    fail_sys("cannot hand the userfaultfd of task {} to the lazy-pages daemon", pid);
}

bool recv_task(int sock, pid_t* pid, Fd* uffd) {
  *pid = 0;
  int fd;
  const ssize_t n = recv_fd(sock, pid, sizeof *pid, &fd);
  if (n < 0 && errno != EPROTO) fail_sys("cannot read from the restore's connection");
  uffd->reset(fd);
  return n == static_cast<ssize_t>(sizeof *pid);
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
