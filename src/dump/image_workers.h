// The images of the dumped tasks, written on worker threads while the tracer's thread goes on
// with the next task: process_vm_readv, /proc and files work from any thread, only ptrace
// requests are bound to the thread that seized the task. Their biggest part is the private
// pages (pagemap-PID.img and pages-N.img); the small per-task images (core, ids, mm, fs) go
// the same way, since creating a file costs more than making its content.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dump/page_sink.h"
#include "image/image.h"
#include "mm.pb.h"

namespace cryo::dump {

// Page ranges [start, end), sorted and disjoint.
using PageRanges = std::vector<std::pair<uint64_t, uint64_t>>;

struct PageStats {
  uint64_t scanned = 0;
  uint64_t written = 0;
  uint64_t in_parent = 0;  // present pages left to the parent image
  // Summed over the workers: time in process_vm_readv/pread, and in write().
  double read_seconds = 0, write_seconds = 0;
};

// Each task's present pages are cut into pieces of at most 4 MiB, which any worker reads
// (process_vm_readv) into one of a few buffers reused for every task (faulted in once per
// dump) and writes at its offset in the task's page image. One worker at a time writes an image;
// the others leave what they read to it and read on: while one reads, another writes, and several
// tasks go at once. A streamed sink (a page server) takes an image's pieces in order: pieces
// get their buffers in order, and the writer writes only the next one.
class ImageWorkers {
 public:
  // Small images go into `dir`, pages to `sink` (which must outlive the workers).
  ImageWorkers(std::string dir, PageSink& sink);
  // Abandons queued work and waits for the jobs being run.
  ~ImageWorkers();
  ImageWorkers(const ImageWorkers&) = delete;
  ImageWorkers& operator=(const ImageWorkers&) = delete;

  // Queues the private pages of task `pid`, whose mappings `mm` lists, for
  // pages-`pages_id`.img. The task's memory must not change until finish(). `estimate` is
  // what the progress total counted for the task, corrected once its pages are known.
  // Like write_one(), throws the error of a job queued earlier, if one failed. The pages in
  // `in_parent` (present pages, all of them) are not copied: their pagemap entries say that
  // the parent image holds them.
  void add_pages(pid_t pid, const mm_entry& mm, uint32_t pages_id, int64_t estimate,
                 PageRanges in_parent = {});
  // The tasks run while their pages are copied (pre-dump): memory they unmap meanwhile is
  // written as zeros instead of failing the dump. Before any add_pages().
  void tasks_run();
  // dump --lazy-pages: the pages of lazy mappings get entries saying they stay on the source,
  // and are not copied. Before any add_pages().
  void lazy_pages();
  // Queues an image of one entry (image::write_one).
  template <class Message>
  void write_one(std::string name, uint32_t magic, Message m) {
    queue_image(std::move(name), magic, std::make_shared<Message>(std::move(m)));
  }
  // Queues other work that needs no ptrace.
  void run(std::function<void()> job);
  // Waits until every queued job is done; throws the first error met.
  PageStats finish();

 private:
  struct Impl;
  void queue_image(std::string name, uint32_t magic,
                   std::shared_ptr<const google::protobuf::MessageLite> m);
  std::string dir_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cryo::dump
