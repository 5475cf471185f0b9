// Network devices of the calling thread's network namespace.
#pragma once

#include <string>

namespace cryo::kernel {

// Brings link `name` up (IFF_UP), as `ip link set NAME up`.
void set_link_up(const std::string& name);

}  // namespace cryo::kernel
