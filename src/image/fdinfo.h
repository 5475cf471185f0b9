// The files.img / fdinfo schema. <signal.h> defines a sigmask() macro that would break the
// generated signalfd_entry::sigmask(): take it in first and drop the macro.
#pragma once

#include <signal.h>
#undef sigmask

#include "fdinfo.pb.h"
