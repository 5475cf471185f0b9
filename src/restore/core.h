// Per-task state from core-PID.img: signals, timers, limits, attributes, credentials, and
// finally registers.
#pragma once

#include "infect/remote_task.h"
#include "restore/plan.h"

namespace cryo::restore {

// Everything that needs remote syscalls; `is_root` skips what belongs to the old parent.
void restore_task_state(RemoteTask& rt, const TaskPlan& t, bool is_root);
// Unmaps the scratch area and sets the registers, xsave and signal mask: the last step.
void restore_registers(RemoteTask& rt, const TaskPlan& t);

}  // namespace cryo::restore
