#include "base/fault.h"

#include <cstdlib>
#include <cstring>

#include "base/error.h"

namespace cryo {

bool fault_wanted(const char* name) {
  const char* want = std::getenv("CRYO_FAULT");
  return want && std::strcmp(want, name) == 0;
}

void fault_point(const char* name) {
  if (fault_wanted(name)) fail("fault injected at {} (CRYO_FAULT)", name);
}

}  // namespace cryo
