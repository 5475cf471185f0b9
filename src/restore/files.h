// Opens a task's files at their fd numbers, and its cwd, root and umask.
#pragma once

#include "infect/remote_task.h"
#include "restore/plan.h"

namespace cryo::restore {

void restore_files(RemoteTask& rt, const TaskPlan& t, const Plan& plan);
void restore_fs(RemoteTask& rt, const TaskPlan& t, const Plan& plan);

}  // namespace cryo::restore
