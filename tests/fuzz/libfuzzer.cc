// libFuzzer target (clang only: see tests/fuzz/CMakeLists.txt). An input is one image file put
// in place of a file of a real image set: byte 0 chooses the set of the corpus
// ($CRYO_FUZZ_CORPUS), byte 1 the file among those with entries, the rest is its content.
// `cryo-fuzz seeds CORPUS DIR` writes every real file in that form, as seeds.
// Refusals (cryo::Error) are the expected outcome; any other exception aborts, so libFuzzer
// reports it with the input.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/error.h"
#include "image_set.h"
#include "schema.h"
#include "targets.h"

namespace {

std::vector<cryo::fuzz::ImageSet>* g_sets;
std::string g_work;

std::vector<size_t> structured(const cryo::fuzz::ImageSet& set) {
  std::vector<size_t> v;
  for (size_t i = 0; i < set.files.size(); i++)
    if (const auto* k = cryo::fuzz::kind_of(set.files[i].name); k && k->magic) v.push_back(i);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* corpus = std::getenv("CRYO_FUZZ_CORPUS");
  if (!corpus) {
    std::fprintf(stderr, "set CRYO_FUZZ_CORPUS to a directory of image sets\n");
    std::exit(2);
  }
  std::vector<std::string> dirs;
  cryo::fuzz::find_sets(corpus, 2, dirs);
  g_sets = new std::vector<cryo::fuzz::ImageSet>;
  for (const auto& d : dirs) g_sets->push_back(cryo::fuzz::ImageSet::load(d));
  if (g_sets->empty()) {
    std::fprintf(stderr, "no image set in %s\n", corpus);
    std::exit(2);
  }
  g_work = "/var/tmp/cryo-libfuzzer." + std::to_string(::getpid());
  cryo::fuzz::make_dir(g_work);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  cryo::fuzz::ImageSet set = (*g_sets)[data[0] % g_sets->size()];
  std::vector<size_t> files = structured(set);
  if (files.empty()) return 0;
  cryo::fuzz::ImageFile& f = set.files[files[data[1] % files.size()]];
  f.data = std::string(reinterpret_cast<const char*>(data) + 2, size - 2);
  f.changed = true;
  const std::string dir = g_work + "/cur";
  cryo::fuzz::remove_tree(dir);
  cryo::fuzz::make_dir(dir);
  set.write(dir);
  try {
    cryo::fuzz::run_parsers(dir);
  } catch (const cryo::Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal: %s\n", e.what());
    std::abort();
  }
  return 0;
}
