// Lazy pages (post-copy restore), the facts shared by its three parts: `cryo restore
// --lazy-pages` (restore/lazy.h), the daemon `cryo lazy-pages` (pages/lazy_daemon.h) and the
// source `cryo dump --lazy-pages --port P` (pages/lazy_source.h).
//
// As CRIU 4.2: the daemon listens on the unix socket lazy-pages.socket of its work directory;
// the restore connects and sends, for each task, one message whose data is the task's pid (an
// int) and which carries the task's userfaultfd (SCM_RIGHTS). cryo's restore ends the list with
// a pid of 0 and no fd, then keeps the connection: the daemon writes one byte kDoneByte there
// once every page is in, and the restore side kills the tree if the connection ends without
// it (the daemon died: its faults would never be served).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "base/fd.h"
#include "mm.pb.h"
#include "pagemap.pb.h"

namespace cryo::pages {

inline constexpr const char* kLazySocket = "lazy-pages.socket";
inline constexpr char kDoneByte = 'D';
// Seconds the daemon waits for the restore to hand over its tasks, and the restore for the
// daemon to take them.
inline constexpr int kHandOverSeconds = 60;

// The mappings whose pages a lazy dump leaves on the source and a lazy restore leaves to the
// daemon: private anonymous memory, not locked (mlock would fault it all in at once), not of
// huge pages, not the vDSO.
bool lazy_vma(const vma_entry& v);
// A pagemap entry of a lazy dump: its pages are on the source, not in the images.
bool on_source(const pagemap_entry& e);

// One task's hand-over message; false on a short read or end of file (with *pid 0).
void send_task(int sock, pid_t pid, int uffd);
bool recv_task(int sock, pid_t* pid, Fd* uffd);

// The path of the daemon's socket in `work_dir`.
std::string socket_path(const std::string& work_dir);

// Kills `pid` and every process descended from it now (SIGKILL); for a tree whose memory can
// no longer be served.
void kill_tree(pid_t pid);

}  // namespace cryo::pages
