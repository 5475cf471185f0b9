#include "imgtool/imgtool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <string_view>

#include "base/error.h"
#include "base/fd.h"
#include "base/own_file.h"
#include "imgtool/codec.h"
#include "imgtool/json.h"
#include "imgtool/show.h"

namespace cryo::imgtool {
namespace {

constexpr const char* kUsage =
    "usage: cryo decode [-i IMAGE] [-o JSON] [--pretty]   image -> crit's JSON\n"
    "       cryo encode [-i JSON] [-o IMAGE]              crit's JSON -> image\n"
    "       cryo show [-D] DIR                            summary of an images directory\n"
    "-i/-o default to stdin/stdout ('-' names them too).\n";

struct Args {
  std::string in, out, dir;
  bool pretty = false;
  bool help = false;
};

Args parse(const std::string& verb, int argc, char** argv) {
  Args a;
  bool has_io = verb != "show";
  for (int i = 1; i < argc; i++) {
    std::string_view s = argv[i];
    auto value = [&](std::string_view opt, std::string* dst) {
      // "-i X", "--in X", "--in=X", "-iX"
      if (s == opt) {
        if (i + 1 >= argc) fail("option {} needs a value", opt);
        *dst = argv[++i];
        return true;
      }
      if (opt.size() > 2 && s.starts_with(std::string(opt) + "=")) {
        *dst = std::string(s.substr(opt.size() + 1));
        return true;
      }
      if (opt.size() == 2 && s.size() > 2 && s.starts_with(opt)) {
        *dst = std::string(s.substr(2));
        return true;
      }
      return false;
    };
    if (s == "-h" || s == "--help") {
      a.help = true;
    } else if (has_io && (value("-i", &a.in) || value("--in", &a.in))) {
    } else if (has_io && (value("-o", &a.out) || value("--out", &a.out))) {
    } else if (verb == "decode" && s == "--pretty") {
      a.pretty = true;
    } else if (!has_io && (value("-D", &a.dir) || value("--images-dir", &a.dir))) {
    } else if (!has_io && !s.starts_with("-") && a.dir.empty()) {
      a.dir = std::string(s);
    } else {
      fail("cryo {}: unknown argument '{}' (cryo {} --help)", verb, s, verb);
    }
  }
  if (!has_io && a.dir.empty() && !a.help)
    fail("cryo show: which images directory? (cryo show DIR)");
  return a;
}

std::string read_input(const std::string& path) {
  Fd owned;
  int fd = STDIN_FILENO;
  if (!path.empty() && path != "-") {
    owned = Fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!owned) fail_sys("cannot open {}", path);
    fd = owned.get();
  }
  std::string data;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_sys("cannot read {}", path.empty() || path == "-" ? "stdin" : path);
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  return data;
}

// -o PATH: a regular file is (re)created as cryo's own output file (never through a link:
// cryo often runs as root). Writing into something that exists and is not a file is allowed
// for /dev/null, a FIFO and cryo's own stdout (/dev/stdout), as scripts use them.
Fd open_output(const std::string& path) {
  struct stat st, out;
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    bool null_dev = S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3;
    bool stdout_file =
        ::fstat(STDOUT_FILENO, &out) == 0 && out.st_dev == st.st_dev && out.st_ino == st.st_ino;
    if (null_dev || S_ISFIFO(st.st_mode) || stdout_file) {
      Fd fd(::open(path.c_str(), O_WRONLY | O_NOCTTY | O_CLOEXEC));
      if (!fd) fail_sys("cannot open {}", path);
      return fd;
    }
  }
  return open_own_file(path, "output file");
}

void write_output(const std::string& path, std::string_view data) {
  Fd owned;
  int fd = STDOUT_FILENO;
  bool to_stdout = path.empty() || path == "-";
  if (!to_stdout) {
    owned = open_output(path);
    fd = owned.get();
  }
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_sys("cannot write {}", to_stdout ? "stdout" : path);
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// The input's name for an error message.
std::string named(const std::string& path) {
  return path.empty() || path == "-" ? "stdin" : path;
}

int decode(const Args& a) {
  std::string data = read_input(a.in);
  std::string out;
  try {
    out = decode_image(data, a.pretty);
  } catch (const Error& e) {
    fail("{}: {}", named(a.in), e.what());
  }
  // As crit: a new line ends the JSON on stdout only.
  if (a.out.empty() || a.out == "-") out += '\n';
  write_output(a.out, out);
  return 0;
}

int encode(const Args& a) {
  std::string text = read_input(a.in);
  std::string out;
  try {
    out = encode_image(text);
  } catch (const Error& e) {
    fail("{}: {}", named(a.in), e.what());
  }
  write_output(a.out, out);
  return 0;
}

}  // namespace

bool is_verb(const std::string& verb) {
  return verb == "decode" || verb == "encode" || verb == "show";
}

int run(const std::string& verb, int argc, char** argv) {
  // A filter: `cryo decode ... | head` ends quietly when head is done, as cat would.
  ::signal(SIGPIPE, SIG_DFL);
  try {
    Args a = parse(verb, argc, argv);
    if (a.help) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (verb == "decode") return decode(a);
    if (verb == "encode") return encode(a);
    if (verb == "show") {
      std::string out = show(a.dir);
      write_output("", out);
      return 0;
    }
    fail("unknown image tool verb '{}'", verb);
  } catch (const Error& e) {
    std::fprintf(stderr, "Error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "Error: internal: %s\n", e.what());
    return 1;
  }
}

}  // namespace cryo::imgtool
