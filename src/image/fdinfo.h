// The files.img / fdinfo schema. <signal.h> defines a sigmask() macro that would break the
// generated signalfd_entry::sigmask(): take it in first and drop the macro.
#pragma once

#include <signal.h>
#undef sigmask

#include "fdinfo.pb.h"

namespace cryo::image {

// unix_sk_entry.uflags: a socket outside the dumped tree that a socket of the tree is connected
// to (--ext-unix-sk); it has no fd, only its name to connect to again (CRIU's USK_EXTERN).
constexpr uint32_t kUskExtern = 1;

}  // namespace cryo::image
