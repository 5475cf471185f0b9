// Seccomp mode and filters of a restored thread. Installed while cryo still has work to do in
// the thread, so its filters are suspended (PTRACE_O_SUSPEND_SECCOMP) until release.
#pragma once

#include "core.pb.h"
#include "infect/remote_task.h"
#include "seccomp.pb.h"

namespace cryo::restore {

void restore_seccomp(RemoteTask& rt, const thread_core_entry& thc, const seccomp_entry& filters);

}  // namespace cryo::restore
