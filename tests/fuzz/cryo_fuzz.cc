// cryo-fuzz: mutates real image sets and feeds them to cryo's image parsers and restore planner.
//
//   cryo-fuzz parsers [options] CORPUS...   seeded in-process fuzzing (see usage())
//   cryo-fuzz mutate --seed S --iteration I [--count N] SRC DST
//                                           writes one mutated copy of image set SRC into DST
//                                           and prints its mutations ("signature<TAB>detail")
//   cryo-fuzz check DIR                     runs the parsers once on DIR (reproducers)
//   cryo-fuzz info                          says whether it was built with sanitizers
//   cryo-fuzz seeds CORPUS... OUT           seeds for the libFuzzer target (libfuzzer.cc)
//
// A CORPUS argument is an images directory or a directory holding some (*/ or */*/).
// Outcomes of one mutated set: accepted (every parser took it), refused (cryo::Error: the
// expected outcome for a corrupt set), internal (another exception: what cryo would report
// as "internal:"), crash (a signal, a sanitizer report) and hang (over --timeout seconds).
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <google/protobuf/stubs/logging.h>

#include "base/error.h"
#include "base/fd.h"
#include "image_set.h"
#include "mutator.h"
#include "rng.h"
#include "schema.h"
#include "targets.h"

#if defined(__SANITIZE_ADDRESS__)
#define CRYO_FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CRYO_FUZZ_ASAN 1
#endif
#endif

#ifdef CRYO_FUZZ_ASAN
// A sanitizer report is a crash: abort, so that the parent sees a signal.
extern "C" const char* __asan_default_options() {
  return "abort_on_error=1:detect_leaks=0:allocator_may_return_null=1:quarantine_size_mb=32";
}
extern "C" const char* __ubsan_default_options() {
  return "halt_on_error=1:abort_on_error=1:print_stacktrace=1";
}
#endif

namespace cryo::fuzz {
namespace {

void usage() {
  std::fprintf(stderr,
               "usage: cryo-fuzz parsers [--seed S] [--iterations N] [--first I]\n"
               "                         [--max-mutations M] [--timeout SEC] [--work DIR]\n"
               "                         [--findings DIR] [--known FILE] [--no-fork] [-v]\n"
               "                         CORPUS...\n"
               "       cryo-fuzz mutate --seed S --iteration I [--count N] SRC DST\n"
               "       cryo-fuzz check DIR\n");
}

// ------------------------------------------------------------------ known findings

// Lines "CLASS SIGNATURE-GLOB [MESSAGE-GLOB]  # why": a finding of CLASS (internal, crash,
// hang; * for any) whose mutations include one matching SIGNATURE-GLOB, and whose message
// matches MESSAGE-GLOB (quoted when it holds spaces; default *), is known: reported, not a
// failure. The same file serves restore_fuzz.py.
struct Known {
  std::string cls, glob, reason, line;
};

std::vector<Known> read_known(const std::string& path) {
  std::vector<Known> out;
  if (path.empty()) return out;
  std::string text = read_file(path);
  size_t at = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    std::string line = text.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
    at = nl == std::string::npos ? text.size() : nl + 1;
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    char cls[64], glob[512];
    int n = 0;
    if (std::sscanf(line.c_str(), "%63s %511s %n", cls, glob, &n) < 2) continue;
    std::string reason = line.substr(static_cast<size_t>(n));
    while (!reason.empty() && std::isspace(static_cast<unsigned char>(reason.back())))
      reason.pop_back();
    if (reason.size() >= 2 && reason.front() == '"' && reason.back() == '"')
      reason = reason.substr(1, reason.size() - 2);
    out.push_back({cls, glob, reason.empty() ? "*" : reason, line});
  }
  return out;
}

const Known* match_known(const std::vector<Known>& known, const std::string& cls,
                         const std::vector<Mutation>& muts, const std::string& msg) {
  for (const Known& k : known) {
    if (k.cls != cls && k.cls != "*") continue;
    if (::fnmatch(k.reason.c_str(), msg.c_str(), 0) != 0) continue;
    for (const Mutation& m : muts)
      if (::fnmatch(k.glob.c_str(), m.signature.c_str(), 0) == 0) return &k;
  }
  return nullptr;
}

// ------------------------------------------------------------------ parsers

struct Options {
  uint64_t seed = 1;
  uint64_t iterations = 1000;
  uint64_t first = 0;
  int max_mutations = 4;
  int timeout = 10;
  std::string work;
  std::string findings;
  std::string known;
  bool fork = true;
  bool verbose = false;
  std::vector<std::string> corpus;
};

enum Outcome { kAccepted, kRefused, kInternal, kCrash, kHang, kOutcomes };
const char* const kOutcomeName[] = {"accepted", "refused", "internal", "crash", "hang"};

// CRYO_FUZZ_INJECT=segv|hang|internal|heap-overflow: a fault of the kind the runner must
// report, for its self test.
void inject_fault() {
  const char* inj = std::getenv("CRYO_FUZZ_INJECT");
  if (!inj) return;
  const std::string k = inj;
  if (k == "segv") ::raise(SIGSEGV);
  if (k == "hang")
    for (;;) ::pause();
  if (k == "internal") throw std::out_of_range("injected: map::at");
  if (k == "heap-overflow") {
    auto p = std::make_unique<char[]>(8);
    volatile char* v = p.get();
    v[k.size() - 5] = 1;  // one past the end
  }
}

Outcome run_inline(const std::string& dir, std::string& msg) {
  try {
    inject_fault();
    run_parsers(dir);
    return kAccepted;
  } catch (const Error& e) {
    msg = e.what();
    return kRefused;
  } catch (const std::exception& e) {
    msg = fmt::format("internal: {}", e.what());
    return kInternal;
  }
}

// One iteration's mutated set: the same for the same seed and iteration.
struct Case {
  const ImageSet* origin;
  ImageSet set;
  std::vector<Mutation> muts;
};

Case make_case(const Options& o, const std::vector<ImageSet>& sets, uint64_t it) {
  Rng rng(o.seed, it);
  const ImageSet& origin = sets[rng.below(sets.size())];
  Case c{&origin, origin, {}};
  int count = 1;
  if (o.max_mutations > 1 && rng.chance(1, 2))
    count = 1 + static_cast<int>(rng.below(static_cast<uint64_t>(o.max_mutations)));
  c.muts = mutate(c.set, rng, count);
  return c;
}

std::string describe(const std::vector<Mutation>& muts) {
  std::string s;
  for (const auto& m : muts) s += m.signature + "\t" + m.detail + "\n";
  return s;
}

// A message without its numbers: findings that differ only in PIDs or offsets are one.
std::string shape(const std::string& msg) {
  std::string out;
  for (size_t i = 0; i < msg.size(); i++) {
    if (std::isdigit(static_cast<unsigned char>(msg[i]))) {
      if (out.empty() || out.back() != '#') out += '#';
    } else {
      out += msg[i];
    }
  }
  return out;
}

void ignore_protobuf_log(google::protobuf::LogLevel, const char*, int, const std::string&) {}

class Runner {
 public:
  explicit Runner(const Options& o) : o_(o) {
    std::vector<std::string> dirs;
    for (const auto& c : o.corpus) find_sets(c, 2, dirs);
    if (dirs.empty()) fail("no image set (a directory with inventory.img) in the corpus");
    for (const auto& d : dirs) sets_.push_back(ImageSet::load(d));
    known_ = read_known(o.known);
    work_ = o.work;
    if (work_.empty()) {
      char tmpl[] = "/var/tmp/cryo-fuzz-parsers.XXXXXX";
      if (!::mkdtemp(tmpl)) fail_sys("mkdtemp");
      work_ = tmpl;
    }
    make_dir(work_);
    cur_ = work_ + "/cur";
    err_ = work_ + "/cur.stderr";
    if (!o.findings.empty()) make_dir(o.findings);
    for (const auto& c : o.corpus) corpus_args_ += " " + c;
  }

  int run() {
    const auto t0 = clock::now();
    const uint64_t end = o_.first + o_.iterations;
    if (!o_.fork) {
      batch(o_.first, end, -1);
    } else {
      // Children run batches of iterations (a fork per iteration costs more than the parsers
      // under the sanitizers); one that dies is replaced, from the iteration after the one it
      // died in.
      for (uint64_t next = o_.first; next < end;) next = fork_batch(next, end);
    }
    remove_tree(cur_);
    ::unlink(err_.c_str());
    if (o_.work.empty()) ::rmdir(work_.c_str());
    report(std::chrono::duration<double>(clock::now() - t0).count());
    return failures_ ? 1 : 0;
  }

 private:
  using clock = std::chrono::steady_clock;

  // Runs iterations [from, to) here; with `out` >= 0, reports each on it ("S it" when it
  // starts, "R it outcome msg" when done) instead of recording it.
  void batch(uint64_t from, uint64_t to, int out) {
    google::protobuf::SetLogHandler(ignore_protobuf_log);
    for (uint64_t it = from; it < to; it++) {
      if (out >= 0) send(out, fmt::format("S {}\n", it));
      const auto p0 = clock::now();
      Case c = make_case(o_, sets_, it);
      remove_tree(cur_);
      make_dir(cur_);
      c.set.write(cur_);
      if (out >= 0) {  // stderr (a file) holds what this iteration prints, for a crash report
        (void)!::ftruncate(STDERR_FILENO, 0);
        ::lseek(STDERR_FILENO, 0, SEEK_SET);
      }
      const auto p1 = clock::now();
      std::string msg;
      ::alarm(static_cast<unsigned>(o_.timeout));
      Outcome r = run_inline(cur_, msg);
      ::alarm(0);
      const auto p2 = clock::now();
      prep_secs_ += std::chrono::duration<double>(p1 - p0).count();
      run_secs_ += std::chrono::duration<double>(p2 - p1).count();
      if (out >= 0) {
        std::replace(msg.begin(), msg.end(), '\n', ' ');
        send(out, fmt::format("R {} {} {}\n", it, static_cast<int>(r), msg));
      } else {
        record(it, r, msg);
      }
    }
  }

  static void send(int fd, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::write(fd, s.data() + off, s.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) std::_Exit(90);
      off += static_cast<size_t>(n);
    }
  }

  static std::string status_text(int st) {
    if (WIFSIGNALED(st))
      return fmt::format("killed by signal {} ({})", WTERMSIG(st), strsignal(WTERMSIG(st)));
    return fmt::format("exit status {}", WEXITSTATUS(st));
  }

  // A child for iterations [from, to); returns where the next child starts.
  uint64_t fork_batch(uint64_t from, uint64_t to) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) fail_sys("pipe");
    Fd rd(fds[0]), wr(fds[1]);
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) fail_sys("fork");
    if (pid == 0) {
      rd.reset();
      int err = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (err >= 0) ::dup2(err, STDERR_FILENO);
      batch(from, to, wr.get());
      send(wr.get(), fmt::format("T {:.6f} {:.6f}\n", prep_secs_, run_secs_));
      std::exit(0);  // exit, not _exit: coverage data is written
    }
    wr.reset();
    std::string buf;
    char chunk[1 << 16];
    std::optional<uint64_t> started;
    uint64_t next = to;
    for (;;) {
      ssize_t n = ::read(rd.get(), chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      buf.append(chunk, static_cast<size_t>(n));
      for (size_t nl; (nl = buf.find('\n')) != std::string::npos; buf.erase(0, nl + 1)) {
        std::string line = buf.substr(0, nl);
        uint64_t it;
        int r, len = 0;
        double a, b;
        if (std::sscanf(line.c_str(), "S %lu", &it) == 1) {
          started = it;
        } else if (std::sscanf(line.c_str(), "R %lu %d %n", &it, &r, &len) == 2 && len) {
          started.reset();
          record(it, static_cast<Outcome>(r), line.substr(static_cast<size_t>(len)));
        } else if (std::sscanf(line.c_str(), "T %lf %lf", &a, &b) == 2) {
          prep_secs_ += a;
          run_secs_ += b;
        }
      }
    }
    int st;
    while (::waitpid(pid, &st, 0) < 0)
      if (errno != EINTR) fail_sys("waitpid");
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && !started) return to;
    if (!started) {
      // Died outside any iteration (at its exit, say): a crash of the runner, not of an image.
      std::string err;
      try {
        err = read_file(err_);
      } catch (const Error&) {
      }
      fmt::print(
          "FINDING crash: a fuzzing child for iterations {}..{} died after its last "
          "iteration ({}); its stderr:\n{}\n",
          from, to - 1, status_text(st), err.substr(0, 4000));
      counts_[kCrash]++;
      failures_++;
      return to;
    }
    std::string msg;
    Outcome r = kCrash;
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) {
      r = kHang;
      msg = fmt::format("no answer within {} s", o_.timeout);
    } else {
      msg = status_text(st);
    }
    next = *started + 1;
    record(*started, r, msg);
    return next;
  }

  void record(uint64_t it, Outcome out, const std::string& msg) {
    counts_[out]++;
    if (o_.verbose || out >= kInternal) {
      Case c = make_case(o_, sets_, it);
      if (o_.verbose && out < kInternal)
        fmt::print("{} {} [{}]\n{}", it, kOutcomeName[out], msg, describe(c.muts));
      if (out >= kInternal) finding(it, out, msg, c);
    }
    if (out == kRefused) refusals_[shape(msg).substr(0, 90)]++;
  }

  void finding(uint64_t it, Outcome out, const std::string& msg, const Case& c) {
    const Known* k = match_known(known_, kOutcomeName[out], c.muts, msg);
    std::string key = fmt::format("{}: {}", kOutcomeName[out], shape(msg).substr(0, 160));
    uint64_t seen = finding_kinds_[key]++;
    if (k)
      known_count_++;
    else
      failures_++;
    if (seen == 0 || o_.verbose)
      fmt::print("{} {} at seed {} iteration {}: {}\n  set {}\n{}{}", k ? "KNOWN" : "FINDING",
                 kOutcomeName[out], o_.seed, it, msg, c.origin->dir(), describe(c.muts),
                 k ? "  known: " + k->line + "\n" : "");
    if (o_.findings.empty() || seen >= 3) return;
    std::string dst = fmt::format("{}/{}-s{}-i{}", o_.findings, kOutcomeName[out], o_.seed, it);
    remove_tree(dst);
    make_dir(dst);
    make_dir(dst + "/images");
    c.set.write(dst + "/images");
    if (out == kCrash || out == kHang) ::rename(err_.c_str(), (dst + "/stderr").c_str());
    char exe_buf[4096] = {};
    const ssize_t exe_len = ::readlink("/proc/self/exe", exe_buf, sizeof exe_buf - 1);
    const std::string exe = exe_len > 0 ? std::string(exe_buf, exe_len) : "cryo-fuzz";
    write_file(dst + "/README",
               fmt::format("{} from image set {}\n{}\nmutations:\n{}\nreproduce:\n"
                           "  {} check {}/images\n"
                           "  {} parsers --seed {} --first {} --iterations 1 "
                           "--max-mutations {} -v{}\n",
                           kOutcomeName[out], c.origin->dir(), msg, describe(c.muts), exe, dst, exe,
                           o_.seed, it, o_.max_mutations, corpus_args_));
  }

  void report(double secs) {
    fmt::print(
        "cryo-fuzz parsers: seed {}, {} iterations ({}..{}) over {} image set(s) in {:.1f} s\n",
        o_.seed, o_.iterations, o_.first, o_.first + o_.iterations - 1, sets_.size(), secs);
    fmt::print("  ({:.1f} s making the image sets, {:.1f} s in the parsers)\n", prep_secs_,
               run_secs_);
    for (int i = 0; i < kOutcomes; i++) fmt::print("  {:9} {}\n", kOutcomeName[i], counts_[i]);
    fmt::print("  of which known findings: {}\n", known_count_);
    std::vector<std::pair<uint64_t, std::string>> top;
    for (const auto& [m, n] : refusals_) top.emplace_back(n, m);
    std::sort(top.rbegin(), top.rend());
    fmt::print("  most frequent refusals ({} distinct):\n", refusals_.size());
    for (size_t i = 0; i < top.size() && i < 12; i++)
      fmt::print("    {:6} {}\n", top[i].first, top[i].second);
    if (!finding_kinds_.empty()) {
      fmt::print("  distinct findings:\n");
      for (const auto& [kmsg, n] : finding_kinds_) fmt::print("    {:6} {}\n", n, kmsg);
    }
    std::fflush(stdout);
  }

  const Options& o_;
  std::vector<ImageSet> sets_;
  std::vector<Known> known_;
  std::string work_, cur_, err_, corpus_args_;
  uint64_t counts_[kOutcomes] = {};
  uint64_t known_count_ = 0, failures_ = 0;
  std::map<std::string, uint64_t> refusals_;       // message shape -> count
  std::map<std::string, uint64_t> finding_kinds_;  // class + shape -> count
  double prep_secs_ = 0, run_secs_ = 0;
};

int cmd_parsers(const Options& o) {
  return Runner(o).run();
}

// ------------------------------------------------------------------ mutate, check

int cmd_mutate(uint64_t seed, uint64_t iteration, int count, const std::string& src,
               const std::string& dst) {
  ImageSet set = ImageSet::load(src);
  Rng rng(seed, iteration);
  std::vector<Mutation> muts = mutate(set, rng, count);
  make_dir(dst);
  set.write(dst);
  fmt::print("{}", describe(muts));
  return 0;
}

// Seeds for the libFuzzer target: [set index][file index][content] for every file with entries.
int cmd_seeds(const std::vector<std::string>& corpus, const std::string& out) {
  std::vector<std::string> dirs;
  for (const auto& c : corpus) find_sets(c, 2, dirs);
  make_dir(out);
  size_t n = 0;
  for (size_t s = 0; s < dirs.size() && s < 256; s++) {
    ImageSet set = ImageSet::load(dirs[s]);
    size_t k = 0;
    for (const ImageFile& f : set.files) {
      const ImageKind* kind = kind_of(f.name);
      if (!kind || !kind->magic) continue;
      const size_t index = k++;  // as libfuzzer.cc counts: every file with entries
      if (!f.data || index > 255) continue;
      std::string seed{static_cast<char>(s), static_cast<char>(index)};
      write_file(fmt::format("{}/seed-{}-{}", out, s, index), seed + *f.data);
      n++;
    }
  }
  fmt::print("{} seeds from {} image set(s) in {}\n", n, dirs.size(), out);
  return 0;
}

int cmd_check(const std::string& dir) {
  try {
    run_parsers(dir);
    fmt::print("accepted\n");
    return 0;
  } catch (const Error& e) {
    fmt::print("refused: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print("internal: {}\n", e.what());
    return 3;
  }
}

uint64_t number(const char* opt, const char* v) {
  if (!v) fail("{} needs a value", opt);
  char* end;
  errno = 0;
  unsigned long long n = std::strtoull(v, &end, 0);
  if (errno || *end || end == v) fail("{}: bad number '{}'", opt, v);
  return n;
}

int main_(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  const std::string cmd = argv[1];
  Options o;
  uint64_t iteration = 0;
  int count = 1;
  std::vector<std::string> args;
  for (int i = 2; i < argc; i++) {
    std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    auto take = [&] {
      if (!v) fail("{} needs a value", a);
      i++;
      return std::string(v);
    };
    if (a == "--seed")
      o.seed = number("--seed", v), i++;
    else if (a == "--iterations")
      o.iterations = number("--iterations", v), i++;
    else if (a == "--first")
      o.first = number("--first", v), i++;
    else if (a == "--iteration")
      iteration = number("--iteration", v), i++;
    else if (a == "--count")
      count = static_cast<int>(number("--count", v)), i++;
    else if (a == "--max-mutations")
      o.max_mutations = static_cast<int>(number("--max-mutations", v)), i++;
    else if (a == "--timeout")
      o.timeout = static_cast<int>(number("--timeout", v)), i++;
    else if (a == "--work")
      o.work = take();
    else if (a == "--findings")
      o.findings = take();
    else if (a == "--known")
      o.known = take();
    else if (a == "--no-fork")
      o.fork = false;
    else if (a == "-v")
      o.verbose = true;
    else if (!a.empty() && a[0] == '-')
      fail("unknown option {}", a);
    else
      args.push_back(a);
  }
  if (cmd == "parsers") {
    if (args.empty()) fail("parsers needs a corpus");
    o.corpus = args;
    return cmd_parsers(o);
  }
  if (cmd == "mutate") {
    if (args.size() != 2) fail("mutate needs SRC and DST");
    return cmd_mutate(o.seed, iteration, count, args[0], args[1]);
  }
  if (cmd == "info") {
#ifdef CRYO_FUZZ_ASAN
    fmt::print("sanitizers: address,undefined\n");
#else
    fmt::print("sanitizers: none\n");
#endif
    return 0;
  }
  if (cmd == "seeds") {
    if (args.size() < 2) fail("seeds needs CORPUS... OUT");
    return cmd_seeds({args.begin(), args.end() - 1}, args.back());
  }
  if (cmd == "check") {
    if (args.size() != 1) fail("check needs DIR");
    return cmd_check(args[0]);
  }
  usage();
  return 2;
}

}  // namespace
}  // namespace cryo::fuzz

int main(int argc, char** argv) {
  try {
    return cryo::fuzz::main_(argc, argv);
  } catch (const cryo::Error& e) {
    std::fprintf(stderr, "cryo-fuzz: %s\n", e.what());
    return 2;
  }
}
