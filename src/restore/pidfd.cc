// pidfds, twins of dump/pidfd.cc. A pidfd on a process of the tree is opened on the restored
// process (same PID). A pidfd on a process that was already reaped is, as CRIU does it, opened
// on a stand-in: a child of cryo that is killed and reaped before the tree runs, so the pidfd
// says "exited" (poll) and "no such process" (pidfd_send_signal). All pidfds that were on one
// dead process (one pidfs inode) share one stand-in.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>

#include "base/error.h"
#include "base/log.h"
#include "restore/file_kind.h"
#include "restore/files.h"

namespace cryo::restore {
namespace {

constexpr uint32_t kPidfdThread = O_EXCL;  // PIDFD_THREAD

class PidfdKind : public FileKind {
 public:
  ~PidfdKind() override { reap(); }
  fd_types type() const override { return PIDFD; }
  void check(Plan& plan, const file_entry& f, pid_t pid, int fd) const override {
    const pidfd_entry& p = f.pidfd();
    if (p.flags() & kPidfdThread)
      fail("task {} fd {}: a pidfd on a single thread (PIDFD_THREAD) cannot be restored", pid, fd);
    if (p.nspid() != -1 && (p.nspid() <= 0 || plan.find(p.nspid()) < 0))
      fail("task {} fd {}: image files.img: pidfd {} is on process {}, which is not in the tree",
           pid, fd, f.id(), p.nspid());
  }
  Fd open(const file_entry& f, FileSet&) override {
    const pidfd_entry& p = f.pidfd();
    const pid_t pid = p.nspid() == -1 ? stand_in(p.ino()) : p.nspid();
    Fd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, p.flags() & O_NONBLOCK)));
    if (!fd)
      fail_sys("cannot open pidfd {} on process {}{}", f.id(), pid,
               p.nspid() == -1 ? " (the stand-in of a reaped process)" : "");
    return fd;
  }
  void keep() override { reap(); }

 private:
  // The stand-in for the reaped process of pidfs inode `ino`: alive until reap().
  pid_t stand_in(uint64_t ino) {
    auto it = stand_ins_.find(ino);
    if (it != stand_ins_.end()) return it->second;
    pid_t child = ::fork();
    if (child < 0) fail_sys("cannot fork a stand-in for a reaped process of a pidfd");
    if (child == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      for (;;) ::pause();
    }
    log::debug("stand-in {} for the reaped process of pidfs inode {}", child, ino);
    stand_ins_[ino] = child;
    return child;
  }
  // Kills and reaps the stand-ins: the pidfds on them now say their process is gone.
  void reap() {
    for (const auto& [ino, child] : stand_ins_) {
      ::kill(child, SIGKILL);
      while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
    stand_ins_.clear();
  }
  std::map<uint64_t, pid_t> stand_ins_;
};

}  // namespace

std::unique_ptr<FileKind> make_pidfd_kind() {
  return std::make_unique<PidfdKind>();
}

}  // namespace cryo::restore
