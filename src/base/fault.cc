#include "base/fault.h"

#include <cstdlib>
#include <cstring>

#include "base/error.h"

namespace cryo {

void fault_point(const char* name) {
  const char* want = std::getenv("CRYO_FAULT");
  if (want && std::strcmp(want, name) == 0) fail("fault injected at {} (CRYO_FAULT)", name);
}

}  // namespace cryo
