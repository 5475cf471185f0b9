#include "targets.h"

#include <dirent.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "base/error.h"
#include "image/image.h"
#include "restore/file_locks.h"
#include "restore/files.h"
#include "restore/plan.h"
#include "restore/shmem.h"
#include "restore/tty.h"
#include "schema.h"

namespace cryo::fuzz {
namespace {

void decode_all(const std::string& dir) {
  std::vector<std::string> names;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) fail_sys("cannot open {}", dir);
  while (dirent* e = ::readdir(d.get())) names.emplace_back(e->d_name);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const ImageKind* kind = kind_of(name);
    if (!kind || kind->magic == 0) continue;
    image::Reader r(dir, name, kind->magic);
    for (size_t i = 0;; i++) {
      auto msg = new_entry(*kind, i);
      if (!r.next(*msg)) break;
      r.take_raw(raw_after(*kind, i, *msg));
    }
  }
}

}  // namespace

void run_parsers(const std::string& dir) {
  decode_all(dir);
  restore::Plan plan = restore::load_plan(dir, /*shell_job=*/true);
  restore::FileLocks locks(plan, /*enabled=*/true);
  restore::ShmemSet shmem(plan);
  restore::Ttys ttys(plan);
  restore::FileSet files(plan, ttys);
}

}  // namespace cryo::fuzz
