#include "base/fault.h"

#include <cstdlib>
#include <cstring>

#include "base/error.h"

namespace cryo {

bool fault_wanted(const char* name) {
  const char* want = std::getenv("CRYO_FAULT");
  return want && std::strcmp(want, name) == 0;
}

long fault_number(const char* name) {
  const char* want = std::getenv("CRYO_FAULT");
  size_t n = std::strlen(name);
  if (!want || std::strncmp(want, name, n) != 0 || want[n] != '=') return -1;
  return std::strtol(want + n + 1, nullptr, 10);
}

void fault_point(const char* name) {
  if (fault_wanted(name)) fail("fault injected at {} (CRYO_FAULT)", name);
}

}  // namespace cryo
