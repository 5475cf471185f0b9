// `cryo check`: does this kernel offer what cryo needs?
#pragma once

#include "cli/options.h"

namespace cryo::cli {

int check(const Options& o);

}  // namespace cryo::cli
