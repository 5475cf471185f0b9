#include "imgtool/show.h"

#include "base/error.h"

namespace cryo::imgtool {

std::string show(const std::string& dir) {
  fail("show {}: not yet", dir);
}

}  // namespace cryo::imgtool
