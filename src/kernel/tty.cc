#include "kernel/tty.h"

#include <asm/termbits.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <thread>

#include "base/error.h"
#include "base/log.h"

namespace cryo::kernel {
namespace {

constexpr size_t kLdiscBuf = 4095;  // N_TTY's read buffer, less one

void set_termios(int master, const Termios2& t, const std::string& what) {
  if (::ioctl(master, kTcsets2, &t) < 0) fail_sys("{}: cannot set the terminal attributes", what);
}

// Bytes the line discipline of `fd` holds for its reader. A poll first makes the kernel
// hand over what is still in flight from the other end (it does so when nothing is readable).
int queued(int fd) {
  pollfd p{fd, POLLIN, 0};
  ::poll(&p, 1, 0);
  int n = 0;
  if (::ioctl(fd, FIONREAD, &n) < 0) return -1;
  return n;
}

std::string drain(int fd, bool packet_mode) {
  std::string out;
  char buf[8192];
  for (int n; (n = queued(fd)) > 0;) {
    ssize_t r = ::read(fd, buf, std::min<size_t>(sizeof buf, static_cast<size_t>(n) + 1));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    // In packet mode each read starts with a status byte: 0 before data; a read of a
    // status change alone carries no data.
    size_t skip = packet_mode ? 1 : 0;
    if (packet_mode && buf[0] != 0) continue;
    out.append(buf + skip, static_cast<size_t>(r) - skip);
  }
  return out;
}

// Writes with a deadline: a terminal that takes no more (output stopped, a corrupt image
// asking for more than a pty holds) must give an error, not a hang.
void write_all(int fd, const std::string& data, const std::string& what, const char* end) {
  using namespace std::chrono;
  const auto deadline = steady_clock::now() + seconds(5);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      if (steady_clock::now() > deadline)
        fail(
            "{}: the {} took only {} of {} bytes in 5 s (flow stopped, or more than a "
            "terminal holds)",
            what, end, off, data.size());
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 100);
      continue;
    }
    if (n <= 0) fail_sys("{}: cannot queue {} bytes into the {} again", what, data.size(), end);
    off += static_cast<size_t>(n);
  }
}

// Waits (bounded) until the line discipline has taken `want` bytes, so that they are
// processed under the quiet attributes. Its buffer holds 4095 bytes at most; the rest waits
// in the terminal's flip buffers and is processed once the reader makes room.
bool wait_queued(int fd, size_t want) {
  using namespace std::chrono;
  want = std::min<size_t>(want, kLdiscBuf);
  const auto deadline = steady_clock::now() + seconds(2);
  for (;;) {
    int n = queued(fd);
    if (n >= 0 && static_cast<size_t>(n) >= want) return true;
    if (steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
}

}  // namespace

CanonInput canon_input(const std::string& queued, const Termios2& t) {
  const uint8_t veof = t.c_cc[VEOF], veol = t.c_cc[VEOL];
  const uint8_t veol2 = (t.c_lflag & IEXTEN) ? t.c_cc[VEOL2] : 0;
  CanonInput ci{queued, 0};
  size_t marks = 0, marks_in_lines = 0, end = 0;
  for (size_t i = 0; i < ci.bytes.size(); i++) {
    const uint8_t c = static_cast<uint8_t>(ci.bytes[i]);
    const bool eof = c == 0 && veof != 0;
    if (eof) {
      ci.bytes[i] = static_cast<char>(veof);
      marks++;
    }
    if (eof || c == '\n' || (c && (c == veol || c == veol2))) {
      end = i + 1;
      marks_in_lines = marks;
    }
  }
  ci.readable = end - marks_in_lines;
  return ci;
}

PtyQueues pty_drain(int master, int slave, const Termios2& t, bool packet_mode,
                    const std::string& what) {
  PtyQueues q;
  // Non-canonical with VMIN = VTIME = 0, a read of the slave returns at once with whatever
  // is queued, partial lines included.
  Termios2 raw = t;
  raw.c_lflag &= ~static_cast<uint32_t>(ICANON);
  raw.c_cc[VMIN] = 0;
  raw.c_cc[VTIME] = 0;
  set_termios(master, raw, what);
  q.to_slave = drain(slave, false);
  q.to_master = drain(master, packet_mode);
  return q;
}

void pty_requeue(int master, int slave, const Termios2& t, const PtyQueues& q,
                 const std::string& what) {
  const bool canon = t.c_lflag & ICANON;
  const bool iexten = t.c_lflag & IEXTEN;
  // No input translation, flow control, signals, echo or output processing; in canonical
  // mode only the line ends stay special, so that the lines are marked as before.
  Termios2 quiet = t;
  quiet.c_iflag = 0;
  quiet.c_oflag &= ~static_cast<uint32_t>(OPOST);
  quiet.c_lflag = canon ? (ICANON | (t.c_lflag & IEXTEN)) : 0;
  std::string input = q.to_slave;
  size_t lines = input.size();  // what the slave's FIONREAD shows once the input is in
  if (canon) {
    for (auto& c : quiet.c_cc) c = 0;
    quiet.c_cc[VEOL] = t.c_cc[VEOL];
    if (iexten) quiet.c_cc[VEOL2] = t.c_cc[VEOL2];
    quiet.c_cc[VEOF] = t.c_cc[VEOF];
    CanonInput ci = canon_input(input, t);
    input = std::move(ci.bytes);
    lines = ci.readable;
  }
  // Non-blocking for the time of the writes, so that a deadline holds; the flags are the
  // open files' own (the task's, at dump), so they go back after.
  const int mflags = ::fcntl(master, F_GETFL), sflags = ::fcntl(slave, F_GETFL);
  if (mflags < 0 || sflags < 0) fail_sys("{}: cannot read the flags of its terminal", what);
  ::fcntl(master, F_SETFL, mflags | O_NONBLOCK);
  ::fcntl(slave, F_SETFL, sflags | O_NONBLOCK);
  struct FlagsBack {
    int fd, flags;
    ~FlagsBack() { ::fcntl(fd, F_SETFL, flags); }
  } mback{master, mflags}, sback{slave, sflags};
  set_termios(master, quiet, what);
  // Both directions are written before anything can fail for a wait: bytes once drained
  // must go back whatever happens next.
  std::optional<Error> failed;
  auto put_back = [&](int fd, const std::string& data, const char* end) {
    try {
      if (!data.empty()) write_all(fd, data, what, end);
    } catch (const Error& e) {
      if (!failed) failed = e;
    }
  };
  put_back(master, input, "slave's input");
  put_back(slave, q.to_master, "master's input");
  if (!failed) {
    bool in = input.empty() || wait_queued(slave, lines);
    // The rest of a canonical line cannot be seen from here: give the kernel a moment.
    if (in && canon && lines < input.size())
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    bool out = q.to_master.empty() || wait_queued(master, q.to_master.size());
    if (!in || !out)
      log::warn(
          "{}: the terminal had not taken all of its queued bytes after 2 s; the rest is "
          "processed with its own attributes (echo, translation)",
          what);
  }
  // The terminal must not stay quiet, also after a failure.
  if (::ioctl(master, kTcsets2, &t) < 0 && !failed)
    fail_sys("{}: cannot set the terminal attributes", what);
  if (failed) throw *failed;
}

}  // namespace cryo::kernel
