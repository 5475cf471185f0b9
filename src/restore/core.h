// Per-task state from core-PID.img: signals, timers, limits, attributes, credentials, and
// finally registers. Process-wide state is set in the leader, per-thread state in each thread.
#pragma once

#include "core.pb.h"
#include "infect/remote_task.h"
#include "restore/plan.h"

namespace cryo::restore {

// Sigactions, itimers, personality, limits...; leaves every signal blocked in the leader so
// that threads created next inherit that and no signal is taken before the end.
void restore_process_state(RemoteTask& leader, const TaskPlan& t);
// What each thread has of its own; `is_root_leader` skips what belongs to the old parent.
void restore_thread_state(RemoteTask& rt, const core_entry& core, bool is_root_leader);
// Process-wide pending signals (queued by the leader itself).
void restore_shared_signals(RemoteTask& leader, const TaskPlan& t);
// Credentials last: dropping root takes away the rights the steps before need.
void restore_creds(RemoteTask& rt, const core_entry& core);
// Registers, xsave and signal mask of one thread: the very last step.
void restore_registers(RemoteTask& rt, const core_entry& core);

}  // namespace cryo::restore
