// SysV IPC objects as cryo handles them: they belong to the IPC namespace of the calling
// thread (a thread that joined another namespace with kernel::in_namespace sees that one's).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace cryo::kernel {

// A SysV shared memory segment attached in cryo for the time of a copy. Its content is read
// and written through the attachment's file, /proc/self/map_files/START-END, so that holes
// stay holes.
class AttachedSegment {
 public:
  AttachedSegment(uint32_t id, bool read_only);
  ~AttachedSegment();
  AttachedSegment(const AttachedSegment&) = delete;
  AttachedSegment& operator=(const AttachedSegment&) = delete;
  // The attachment's file, to open (O_RDONLY, or O_RDWR when not read-only).
  const std::string& file() const { return file_; }

 private:
  void* p_;
  std::string file_;
};

// Runs `get` (a shmget, semget or msgget) as user `uid`/`gid`, who become the object's creator
// and owner: in a thread of its own, whose credentials (set by the raw syscalls) are its alone
// and end with it. Returns get's result, or -errno.
int create_as(uint32_t uid, uint32_t gid, const std::function<int()>& get);

// Makes the next object of a kind take id `id` (kernel.shm_next_id, sem_next_id or
// msg_next_id: `path`); the kernel needs CONFIG_CHECKPOINT_RESTORE.
void set_next_id(const char* path, long id);

}  // namespace cryo::kernel
