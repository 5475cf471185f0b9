#include "dump/image_workers.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "base/progress.h"
#include "image/image.h"
#include "kernel/syscalls.h"
#include "pagemap.pb.h"
#include "pages/lazy.h"

namespace cryo::dump {
namespace {

using kernel::kPmExclusive, kernel::kPmFile, kernel::kPmPfnMask, kernel::kPmPresent,
    kernel::kPmSwap;
// A page not kPmExclusive, shared copy-on-write (after fork), must not be read with
// process_vm_readv: the kernel pins what it reads, and pinning a shared anonymous page gives
// the task its own copy, so a dump would undo the sharing in the running tree
// (tests/cr/progs/cow.c). /proc/PID/mem reads without pinning.
// Bytes a worker copies at once. Writes of 1 MiB into the page cache measured 5-10 times
// slower here than writes of 4 MiB or more (0.45-0.7 s against 0.08-0.15 s for 256 MiB).
constexpr size_t kPiece = 4 << 20;
constexpr size_t kMaxIov = kPiece / kernel::kPageSize;  // at most IOV_MAX
constexpr uint64_t kPagemapWindow = 1 << 16;            // pagemap entries read at once
constexpr unsigned kMaxWorkers = 4;
constexpr unsigned kBuffersPerWorker = 2;

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The PFN of the shared zero page, to skip pages that were only ever read.
uint64_t zero_pfn() {
  static const uint64_t pfn = [] {
    void* p = ::mmap(nullptr, kernel::kPageSize, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return ~0ULL;
    volatile char c = *static_cast<volatile char*>(p);
    (void)c;
    uint64_t e = 0;
    Fd fd(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
    if (fd) ::pread(fd.get(), &e, 8, reinterpret_cast<uint64_t>(p) / kernel::kPageSize * 8);
    ::munmap(p, kernel::kPageSize);
    uint64_t z = (e & kPmPresent) ? (e & kPmPfnMask) : ~0ULL;
    return z == 0 ? ~0ULL : z;  // PFNs hidden: do not skip anything
  }();
  return pfn;
}

// A private mapping whose pages are dumped.
struct PrivateVma {
  uint64_t start, end;
  bool file;          // the pages still in the file's page cache are left out
  bool readable;      // else read through /proc/PID/mem (process_vm_readv honours protections)
  bool lazy = false;  // dump --lazy-pages: its pages stay on the source (pages/lazy.h)
};

// A piece read into a buffer, to be written at `file_off` of its image.
struct Filled {
  char* buf;
  uint64_t file_off;
  size_t bytes;
};

// The page image of one task, being written by the workers.
struct TaskPages {
  pid_t pid = 0;
  std::unique_ptr<PageImage> image;
  Fd mem;  // /proc/PID/mem, opened when a mapping without PROT_READ has pages
  std::atomic<size_t> pieces_left{0};
  uint64_t scanned = 0, written = 0, in_parent = 0;
  // One worker at a time writes the image (the kernel would make the others wait for the
  // file's lock): the others leave what they read here and read on.
  std::mutex write_mu;
  std::deque<Filled> filled;  // by file offset
  bool writing = false;
  uint64_t written_off = 0;  // a streamed image's next offset (under write_mu)
  size_t next_take = 0;      // a streamed image's next piece to get a buffer (under Impl::mu)
};

// Bytes [file_off, file_off + bytes) of a task's page image: the task's memory at `remote`.
struct Piece {
  std::shared_ptr<TaskPages> task;
  size_t index = 0;  // in the task's image
  uint64_t file_off = 0;
  size_t bytes = 0;
  bool readable = true;
  std::vector<iovec> remote;
};

// A task to scan (its pagemap, into pieces), a piece to copy, or something else to run.
struct Job {
  std::function<void()> run;
  pid_t pid = 0;
  uint32_t pages_id = 0;
  int64_t estimate = 0;
  std::vector<PrivateVma> vmas;
  PageRanges in_parent;
  Piece piece;  // when piece.task is set
};

// What one worker reuses for every task: its pagemap window.
struct WorkerState {
  std::vector<uint64_t> pme;
};

}  // namespace

struct ImageWorkers::Impl {
  Impl(const std::string& images_dir, PageSink& s) : dir(images_dir), sink(s) {}
  const std::string& dir;
  PageSink& sink;
  std::mutex mu;
  std::condition_variable work_cv, idle_cv;
  std::deque<Job> queue;
  size_t busy = 0;
  bool stopping = false;
  bool running = false;  // the tasks run while their pages are copied (a pre-dump)
  bool lazy = false;     // lazy mappings' pages are listed, not copied (dump --lazy-pages)
  std::exception_ptr error;
  PageStats stats;
  std::vector<pid_t> copying;  // tasks whose pages are not all written yet, oldest first
  // Held to create or rename an image file. The kernel does one at a time in a directory (its
  // lock); a worker waiting for it sleeps here, instead of spinning on that lock on a CPU the
  // tracer thread and the tasks need.
  std::mutex dir_mu;
  // Piece buffers, reused for every task (faulted in once per dump): two a worker, so that
  // one can be read into while the other waits to be written.
  std::vector<std::unique_ptr<char[]>> buffers;
  std::vector<char*> free_buffers;  // guarded by mu
  std::condition_variable buffer_cv;
  std::vector<std::thread> workers;

  void push(Job job);
  void work();
  void scan(Job& job, WorkerState& ws);
  void copy(Piece& p);
  void write_filled(TaskPages& t, Filled f);
  char* take_buffer(TaskPages& t, size_t index);
  void give_buffer(char* buf);
  void done(TaskPages& t);
};

ImageWorkers::ImageWorkers(std::string dir, PageSink& sink)
    : dir_(std::move(dir)), impl_(std::make_unique<Impl>(dir_, sink)) {
  // One a CPU: the copies are CPU work (page pinning, copying, page cache allocation).
  unsigned n = std::clamp(std::thread::hardware_concurrency(), 1u, kMaxWorkers);
  for (unsigned i = 0; i < n * kBuffersPerWorker; i++) {
    impl_->buffers.emplace_back(new char[kPiece]);  // not zeroed: touched only when used
    impl_->free_buffers.push_back(impl_->buffers.back().get());
  }
  // Workers take no signal: the stop signals and the wait alarms are the tracer thread's.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    for (unsigned i = 0; i < n; i++) impl_->workers.emplace_back([this] { impl_->work(); });
  } catch (const std::system_error& e) {
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (impl_->workers.empty()) fail("cannot start a thread to dump memory: {}", e.what());
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

ImageWorkers::~ImageWorkers() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
    impl_->queue.clear();
  }
  impl_->work_cv.notify_all();
  impl_->buffer_cv.notify_all();
  for (auto& w : impl_->workers) w.join();
}

void ImageWorkers::add_pages(pid_t pid, const mm_entry& mm, uint32_t pages_id, int64_t estimate,
                             PageRanges in_parent) {
  Job job;
  job.pid = pid;
  job.in_parent = std::move(in_parent);
  job.pages_id = pages_id;
  job.estimate = estimate;
  for (const vma_entry& v : mm.vmas()) {
    if (!(v.status() & (image::kVmaAnonPrivate | image::kVmaFilePrivate))) continue;
    job.vmas.push_back({v.start(), v.end(), (v.status() & image::kVmaFilePrivate) != 0,
                        (v.prot() & PROT_READ) != 0, impl_->lazy && pages::lazy_vma(v)});
  }
  {
    std::lock_guard lock(impl_->mu);
    impl_->copying.push_back(pid);
  }
  impl_->push(std::move(job));
}

void ImageWorkers::lazy_pages() {
  std::lock_guard lock(impl_->mu);
  impl_->lazy = true;
}

void ImageWorkers::tasks_run() {
  std::lock_guard lock(impl_->mu);
  impl_->running = true;
}

void ImageWorkers::queue_image(std::string name, uint32_t magic,
                               std::shared_ptr<const google::protobuf::MessageLite> m) {
  run([this, name = std::move(name), magic, m = std::move(m)] {
    std::lock_guard hold(impl_->dir_mu);  // small: written while held
    image::write_one(dir_, name, magic, *m);
  });
}

void ImageWorkers::run(std::function<void()> run) {
  Job job;
  job.run = std::move(run);
  impl_->push(std::move(job));
}

PageStats ImageWorkers::finish() {
  std::unique_lock lock(impl_->mu);
  pid_t shown = 0;
  while (!impl_->queue.empty() || impl_->busy > 0) {
    // The progress line names the oldest task whose memory is still being copied.
    if (!impl_->copying.empty() && impl_->copying.front() != shown) {
      shown = impl_->copying.front();
      progress::phase(fmt::format("memory of task {}", shown));
    }
    impl_->idle_cv.wait(lock);
  }
  if (impl_->error) std::rethrow_exception(impl_->error);
  return impl_->stats;
}

void ImageWorkers::Impl::push(Job job) {
  {
    std::lock_guard lock(mu);
    if (error) std::rethrow_exception(error);
    queue.push_back(std::move(job));
  }
  work_cv.notify_one();
}

void ImageWorkers::Impl::work() {
  WorkerState ws;
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu);
      work_cv.wait(lock, [&] { return stopping || !queue.empty(); });
      if (stopping) return;
      job = std::move(queue.front());
      queue.pop_front();
      busy++;
    }
    try {
      if (job.run)
        job.run();
      else if (job.piece.task)
        copy(job.piece);
      else
        scan(job, ws);
    } catch (...) {
      {
        std::lock_guard lock(mu);
        if (!error) error = std::current_exception();
        queue.clear();  // the dump fails: the rest is not worth copying
      }
      buffer_cv.notify_all();  // nobody waits for a buffer any more
    }
    std::lock_guard lock(mu);
    if (--busy == 0 && queue.empty()) idle_cv.notify_all();
  }
}

// Reads the task's pagemap, writes its pagemap image and queues its pages as pieces.
void ImageWorkers::Impl::scan(Job& job, WorkerState& ws) {
  interrupt_point();
  const pid_t pid = job.pid;
  auto task = std::make_shared<TaskPages>();
  task->pid = pid;
  Fd pagemap(::open(fmt::format("/proc/{}/pagemap", pid).c_str(), O_RDONLY | O_CLOEXEC));
  if (!pagemap) fail_sys("cannot open /proc/{}/pagemap", pid);
  std::vector<pagemap_entry> entries;

  const uint64_t zpfn = zero_pfn();
  std::vector<Piece> pieces;
  uint64_t file_off = 0;
  // Appends [addr, addr + len) of the task's memory to the image, in pieces.
  auto take = [&](uint64_t addr, uint64_t len, bool readable) {
    while (len > 0) {
      Piece* p = pieces.empty() ? nullptr : &pieces.back();
      if (!p || p->bytes == kPiece || p->remote.size() == kMaxIov || p->readable != readable) {
        p = &pieces.emplace_back();
        p->task = task;
        p->index = pieces.size() - 1;
        p->file_off = file_off;
        p->readable = readable;
      }
      size_t n = std::min<uint64_t>(len, kPiece - p->bytes);
      if (!p->remote.empty() &&
          reinterpret_cast<uint64_t>(p->remote.back().iov_base) + p->remote.back().iov_len == addr)
        p->remote.back().iov_len += n;
      else
        p->remote.push_back({reinterpret_cast<void*>(addr), n});
      p->bytes += n;
      file_off += n;
      addr += n;
      len -= n;
    }
  };
  bool need_mem = false;
  // [s, e) of mapping v, by its pagemap: an entry for each run of wanted pages, copied.
  auto copy_range = [&](const PrivateVma& v, uint64_t s, uint64_t e) {
    const uint64_t npages = (e - s) / kernel::kPageSize;
    for (uint64_t w0 = 0; w0 < npages; w0 += kPagemapWindow) {
      uint64_t wn = std::min(kPagemapWindow, npages - w0);
      ws.pme.resize(wn);
      uint64_t first = s / kernel::kPageSize + w0;
      ssize_t n = ::pread(pagemap.get(), ws.pme.data(), wn * 8, static_cast<off_t>(first * 8));
      if (n != static_cast<ssize_t>(wn * 8))
        fail_sys("cannot read /proc/{}/pagemap at {:#x}", pid, first * kernel::kPageSize);
      auto wanted = [&](uint64_t e) {
        if (e & kPmSwap) return true;
        if (!(e & kPmPresent)) return false;
        if (v.file && (e & kPmFile)) return false;  // still the file's page cache page
        return (e & kPmPfnMask) != zpfn;
      };
      for (uint64_t i = 0; i < wn;) {
        if (!wanted(ws.pme[i])) {
          i++;
          continue;
        }
        uint64_t j = i + 1;
        while (j < wn && wanted(ws.pme[j])) j++;
        pagemap_entry e;
        e.set_vaddr((first + i) * kernel::kPageSize);
        e.set_nr_pages(static_cast<uint32_t>(j - i));
        e.set_flags(v.lazy ? image::kPeLazy : image::kPePresent);
        entries.push_back(std::move(e));
        if (v.lazy) {
          i = j;
          continue;
        }
        task->written += j - i;
        for (uint64_t k = i; k < j;) {
          const bool alone =
              (ws.pme[k] & (kPmPresent | kPmExclusive)) == (kPmPresent | kPmExclusive);
          uint64_t m = k + 1;
          while (m < j && ((ws.pme[m] & (kPmPresent | kPmExclusive)) ==
                           (kPmPresent | kPmExclusive)) == alone)
            m++;
          const bool readable = v.readable && alone;
          need_mem |= !readable;
          take((first + k) * kernel::kPageSize, (m - k) * kernel::kPageSize, readable);
          k = m;
        }
        i = j;
      }
    }
  };
  // Pages the parent image holds as they are (present ones: see dump/mem_track.h) get entries
  // saying so, without a look at the pagemap; the rest is read and copied.
  const PageRanges& same = job.in_parent;
  size_t ui = 0;
  for (const PrivateVma& v : job.vmas) {
    task->scanned += (v.end - v.start) / kernel::kPageSize;
    for (uint64_t at = v.start; at < v.end;) {
      while (ui < same.size() && same[ui].second <= at) ui++;
      if (ui == same.size() || same[ui].first > at) {
        const uint64_t stop = ui < same.size() ? std::min(v.end, same[ui].first) : v.end;
        copy_range(v, at, stop);
        at = stop;
        continue;
      }
      const uint64_t stop = std::min(v.end, same[ui].second);
      for (uint64_t a = at; a < stop;) {
        const uint64_t n = std::min<uint64_t>((stop - a) / kernel::kPageSize, 1u << 31);
        pagemap_entry e;
        e.set_vaddr(a);
        e.set_nr_pages(static_cast<uint32_t>(n));
        e.set_flags(image::kPeParent);
        entries.push_back(std::move(e));
        a += n * kernel::kPageSize;
      }
      task->in_parent += (stop - at) / kernel::kPageSize;
      at = stop;
    }
  }
  if ((need_mem || running) && !task->mem) {
    task->mem.reset(::open(fmt::format("/proc/{}/mem", pid).c_str(), O_RDONLY | O_CLOEXEC));
    if (!task->mem) fail_sys("cannot open /proc/{}/mem", pid);
  }
  {
    // A local image creates files (one at a time in a directory); a streamed sink may wait
    // here until the image before is sent, holding no lock the workers need meanwhile.
    std::unique_lock in_dir(dir_mu, std::defer_lock);
    if (!sink.streamed()) in_dir.lock();
    task->image = sink.open(PagemapKind::kTask, static_cast<uint64_t>(pid), job.pages_id);
  }
  for (const pagemap_entry& e : entries) task->image->entry(e);
  progress::add_total(static_cast<int64_t>(task->written) - job.estimate);
  {
    std::lock_guard lock(mu);
    stats.in_parent += task->in_parent;
  }
  if (pieces.empty()) {
    done(*task);
    return;
  }
  task->pieces_left = pieces.size();
  {
    std::lock_guard lock(mu);
    // In front: a task started is finished first, and its image closed.
    for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
      Job j;
      j.piece = std::move(*it);
      queue.push_front(std::move(j));
    }
  }
  work_cv.notify_all();
}

// For a streamed image, pieces get buffers in order: the buffers can never all be held by
// pieces that wait for an earlier one to be sent.
char* ImageWorkers::Impl::take_buffer(TaskPages& t, size_t index) {
  const bool ordered = sink.streamed();
  std::unique_lock lock(mu);
  buffer_cv.wait(lock, [&] {
    return (!free_buffers.empty() && (!ordered || t.next_take == index)) || error || stopping;
  });
  if (error || stopping) fail("the dump of memory stopped");  // the first error is the one told
  char* buf = free_buffers.back();
  free_buffers.pop_back();
  if (ordered) {
    t.next_take++;
    lock.unlock();
    buffer_cv.notify_all();
  }
  return buf;
}

void ImageWorkers::Impl::give_buffer(char* buf) {
  {
    std::lock_guard lock(mu);
    free_buffers.push_back(buf);
  }
  buffer_cv.notify_one();
}

void ImageWorkers::Impl::copy(Piece& p) {
  interrupt_point();
  TaskPages& t = *p.task;
  char* buf = take_buffer(t, p.index);
  auto t0 = Clock::now();
  try {
    auto where = [&] { return reinterpret_cast<uint64_t>(p.remote.front().iov_base); };
    bool whole = false;
    if (p.readable) {
      iovec local{buf, p.bytes};
      ssize_t n = ::process_vm_readv(t.pid, &local, 1, p.remote.data(), p.remote.size(), 0);
      whole = n == static_cast<ssize_t>(p.bytes);
      if (!whole && !running)
        fail_sys("cannot read the memory of task {} at {:#x}", t.pid, where());
    }
    if (!whole) {
      size_t done = 0;
      for (const iovec& r : p.remote) {
        const auto at = reinterpret_cast<uint64_t>(r.iov_base);
        ssize_t n = ::pread(t.mem.get(), buf + done, r.iov_len, static_cast<off_t>(at));
        if (n != static_cast<ssize_t>(r.iov_len) && !running)
          fail_sys("cannot read the memory of task {} at {:#x}", t.pid, at);
        if (n != static_cast<ssize_t>(r.iov_len)) {
          // Unmapped since the tree was let go: its mapping is gone, so the next dump of the
          // chain never takes these pages from this image (dump/mem_track.h).
          std::memset(buf + done, 0, r.iov_len);
          log::debug("task {}: {} bytes at {:#x} gone while copied", t.pid, r.iov_len, at);
        }
        done += r.iov_len;
      }
    }
  } catch (...) {
    give_buffer(buf);
    throw;
  }
  double read_s = seconds_since(t0);
  {
    std::lock_guard lock(mu);
    stats.read_seconds += read_s;
  }
  write_filled(t, {buf, p.file_off, p.bytes});
}

// Queues a piece read for writing; the worker that finds nobody writing the image writes
// everything queued there until none is left.
void ImageWorkers::Impl::write_filled(TaskPages& t, Filled f) {
  const bool ordered = sink.streamed();
  {
    std::lock_guard lock(t.write_mu);
    auto at = std::find_if(t.filled.begin(), t.filled.end(),
                           [&](const Filled& g) { return g.file_off > f.file_off; });
    t.filled.insert(at, f);
    if (t.writing) return;
    t.writing = true;
  }
  for (;;) {
    Filled w;
    {
      std::lock_guard lock(t.write_mu);
      // A streamed image waits for its next piece: the worker that brings it writes on.
      if (t.filled.empty() || (ordered && t.filled.front().file_off != t.written_off)) {
        t.writing = false;
        return;
      }
      w = t.filled.front();
      t.filled.pop_front();
      t.written_off = w.file_off + w.bytes;
    }
    auto t0 = Clock::now();
    try {
      t.image->write(w.file_off, w.buf, w.bytes);
    } catch (...) {
      give_buffer(w.buf);
      throw;  // the dump fails: t is dropped
    }
    give_buffer(w.buf);
    double write_s = seconds_since(t0);
    progress::add_done(w.bytes / kernel::kPageSize);
    {
      std::lock_guard lock(mu);
      stats.write_seconds += write_s;
    }
    if (--t.pieces_left == 0) done(t);
  }
}

void ImageWorkers::Impl::done(TaskPages& t) {
  {
    std::unique_lock in_dir(dir_mu, std::defer_lock);
    if (!sink.streamed()) in_dir.lock();  // the pagemap image is renamed into place
    auto image = std::move(t.image);
    image->close();
  }
  t.mem.reset();
  log::info("task {}: {} pages scanned, {} dumped, {} left in the parent image", t.pid, t.scanned,
            t.written, t.in_parent);
  {
    std::lock_guard lock(mu);
    stats.scanned += t.scanned;
    stats.written += t.written;
    if (auto it = std::find(copying.begin(), copying.end(), t.pid); it != copying.end())
      copying.erase(it);
  }
  idle_cv.notify_all();
}

}  // namespace cryo::dump
