#include "restore/restore.h"
#include "base/error.h"
namespace cryo::restore {
int run(const Options&) { fail("not yet"); }
}
