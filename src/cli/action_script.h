// --action-script FILE: CRIU's action scripts, told of each notification point.
#pragma once

#include "base/hooks.h"
#include "cli/options.h"

namespace cryo::cli {

// Adds one listener per --action-script to h: `sh -c FILE` with CRTOOLS_SCRIPT_ACTION,
// CRTOOLS_IMAGE_DIR and CRTOOLS_INIT_PID (when the root is known) in its environment, stdin on
// /dev/null. A script that exits non-zero, is killed, or runs longer than a minute (it is then
// killed with its process group) aborts the operation.
void add_action_scripts(const Options& o, hooks::Hooks* h);

}  // namespace cryo::cli
