// Checks of image contents before anything is created: images are untrusted input. Each check
// is a pure function of the entries and of this machine's limits (given, so that tests can
// set them); it throws one Error naming the image, the entry and the field.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core.pb.h"
#include "image/fdinfo.h"
#include "mm.pb.h"
#include "pagemap.pb.h"
#include "pipe-data.pb.h"

namespace cryo::restore {

// Top of x86_64 user space (4-level paging) and the fixed vsyscall page above it.
constexpr uint64_t kUserTop = 0x7ffffffff000ULL;
constexpr uint64_t kVsyscallStart = 0xffffffffff600000ULL;
// How far a shared memory object may reach: it is mapped whole in one task.
constexpr uint64_t kSharedObjectMax = 1ULL << 47;
// The largest queue cryo can put back into one unix socket (its sender's buffer is raised
// to hold the queue, at most this far).
constexpr uint64_t kSocketQueueMax = 1ULL << 30;
// Bytes the kernel charges a queued message beyond its data (an estimate on the high side).
constexpr uint64_t kSocketMsgOverhead = 1024;

// What this machine allows.
struct Limits {
  uint64_t mmap_min_addr = 65536;    // vm.mmap_min_addr
  uint64_t max_map_count = 65530;    // vm.max_map_count
  uint64_t pipe_max_size = 1 << 20;  // the largest pipe cryo may make: fs.pipe-max-size,
                                     // or 2 GiB with CAP_SYS_RESOURCE
  uint64_t nr_open = 1 << 20;        // fs.nr_open: no fd number reaches it
  static Limits of_system();
};

// mm-PID.img: mappings page aligned, sorted, apart, inside user space and above
// mmap_min_addr; file offsets aligned; mm fields in order; auxv of a sane size.
void check_mm(const mm_entry& mm, const std::string& image, const Limits& lim);

// Runs of pages of a pagemap image, in order and apart, each below `limit`; with `mm`, each
// page inside a private mapping of it (where pages are written). Runs marked as in the parent
// image are taken only with `parent_ok` (a task's pages of an image chain). Returns the count
// of pages this image holds (those in the parent not counted).
uint64_t check_page_runs(const std::vector<pagemap_entry>& runs, const std::string& image,
                         const mm_entry* mm, uint64_t limit, bool parent_ok = false);
// The pages image holds exactly the pages its pagemap lists.
void check_pages_size(uint64_t pages, uint64_t file_size, const std::string& pages_image,
                      const std::string& pagemap_image);

// fdinfo-N.img, sorted by fd: each fd number once, below fs.nr_open.
void check_fds(const std::vector<fdinfo_entry>& fds, const std::string& image, const Limits& lim);
// A files.img entry carries the part its type says, with the entry's own id; an epoll's
// registrations name fd numbers below fs.nr_open.
void check_file_entry(const file_entry& f, const Limits& lim);

// core-TID.img: credentials that the set*id calls would take as "unchanged" (-1), groups.
void check_creds(const creds_entry& c, const std::string& image);
// core-PID.img: the task core (personality, counts).
void check_task_core(const task_core_entry& tc, const std::string& image);

// pipes-data.img / fifo-data.img: the data fits the pipe it goes back into.
void check_pipe_data(const pipe_data_entry& e, const std::string& image, const Limits& lim);
// sk-queues.img: the queue of socket `id` fits what cryo can put back.
void check_socket_queue(uint32_t id, const std::vector<std::string>& msgs,
                        const std::string& image);

}  // namespace cryo::restore
