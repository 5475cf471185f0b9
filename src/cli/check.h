// `cryo check`: does this kernel offer what cryo needs, and can cryo use it?
#pragma once

#include <string>
#include <vector>

#include "cli/options.h"

namespace cryo::cli {

// Plain: the basics every dump and restore needs ("Looks good."). --feature NAME: one of
// CRIU 4.2's feature names; "NAME is supported" (exit 0) only when the kernel has it and
// cryo checkpoints and restores what it gates, else which of the two lacks it (exit 1).
// --extra/--experimental/--all: one line per feature, exit 1 when any is missing (as CRIU).
int check(const Options& o);

// What plain `check` finds missing ("" when everything is there), and the same for one
// feature of CRIU 4.2 (why the kernel or cryo lacks it). The RPC's CHECK and FEATURE_CHECK.
std::string basics_problem();
std::string feature_problem(const std::string& name);

// CRIU 4.2's feature names, in CRIU's order.
std::vector<std::string> feature_names();

}  // namespace cryo::cli
