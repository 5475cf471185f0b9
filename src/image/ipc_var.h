// The sysctls of an IPC namespace that ipcns-var-ID.img keeps (CRIU's ipc_var_entry), in the
// order a restore writes them. A sysctl file of /proc/sys reads and writes the IPC namespace
// of the thread that opens it.
#pragma once

#include <cstdint>

#include "ipc-var.pb.h"

namespace cryo::image {

// kernel.sem holds four numbers: ipc_var_entry.sem_ctls.
inline constexpr const char* kSemSysctl = "/proc/sys/kernel/sem";
inline constexpr int kSemCtls = 4;
inline constexpr const char* kShmRmidForced = "/proc/sys/kernel/shm_rmid_forced";

struct IpcSysctl {
  const char* path;
  uint64_t (*get)(const ipc_var_entry&);
  void (*set)(ipc_var_entry&, uint64_t);
  bool (*has)(const ipc_var_entry&);  // false: an optional field the image lacks
};

#define CRYO_IPC_VAR(path, field, type)                                            \
  IpcSysctl {                                                                      \
    path, [](const ipc_var_entry& e) -> uint64_t { return e.field(); },            \
        [](ipc_var_entry& e, uint64_t v) { e.set_##field(static_cast<type>(v)); }, \
        [](const ipc_var_entry& e) { return e.has_##field(); }                     \
  }

inline const IpcSysctl kIpcSysctls[] = {
    CRYO_IPC_VAR("/proc/sys/kernel/msgmax", msg_ctlmax, uint32_t),
    CRYO_IPC_VAR("/proc/sys/kernel/msgmnb", msg_ctlmnb, uint32_t),
    CRYO_IPC_VAR("/proc/sys/kernel/msgmni", msg_ctlmni, uint32_t),
    CRYO_IPC_VAR("/proc/sys/kernel/auto_msgmni", auto_msgmni, uint32_t),
    CRYO_IPC_VAR("/proc/sys/kernel/shmmax", shm_ctlmax, uint64_t),
    CRYO_IPC_VAR("/proc/sys/kernel/shmall", shm_ctlall, uint64_t),
    CRYO_IPC_VAR("/proc/sys/kernel/shmmni", shm_ctlmni, uint32_t),
    CRYO_IPC_VAR(kShmRmidForced, shm_rmid_forced, uint32_t),
    CRYO_IPC_VAR("/proc/sys/fs/mqueue/queues_max", mq_queues_max, uint32_t),
    CRYO_IPC_VAR("/proc/sys/fs/mqueue/msg_max", mq_msg_max, uint32_t),
    CRYO_IPC_VAR("/proc/sys/fs/mqueue/msgsize_max", mq_msgsize_max, uint32_t),
    CRYO_IPC_VAR("/proc/sys/fs/mqueue/msg_default", mq_msg_default, uint32_t),
    CRYO_IPC_VAR("/proc/sys/fs/mqueue/msgsize_default", mq_msgsize_default, uint32_t),
};

#undef CRYO_IPC_VAR

}  // namespace cryo::image
