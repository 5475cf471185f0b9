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
// What each thread has of its own.
void restore_thread_state(RemoteTask& rt, const core_entry& core);
// Process-wide pending signals (queued by the leader itself).
void restore_shared_signals(RemoteTask& leader, const TaskPlan& t);
// Credentials last: dropping root takes away the rights the steps before need.
void restore_creds(RemoteTask& rt, const core_entry& core);
// What a change of credentials resets: the pdeath signal (per thread) and the dumpable
// flag (per process) are set after restore_creds.
void restore_after_creds(RemoteTask& rt, const core_entry& core, bool is_root_leader);
void restore_dumpable(RemoteTask& leader, const TaskPlan& t);
// POSIX timers, once every thread exists (a timer may target one of them).
void restore_timers(RemoteTask& leader, const TaskPlan& t);
// Registers, xsave and signal mask of one thread: the very last step.
void restore_registers(RemoteTask& rt, const core_entry& core);

}  // namespace cryo::restore
