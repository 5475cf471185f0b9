#include "kernel/tty.h"

#include <asm/termbits.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "base/error.h"

namespace cryo::kernel {
namespace {

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

void write_all(int fd, const std::string& data, const std::string& what, const char* end) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 100);
      continue;
    }
    if (n <= 0) fail_sys("{}: cannot queue {} bytes into the {} again", what, data.size(), end);
    off += static_cast<size_t>(n);
  }
}

void wait_queued(int fd, size_t want, const std::string& what, const char* end) {
  using namespace std::chrono;
  const auto deadline = steady_clock::now() + seconds(2);
  for (;;) {
    int n = queued(fd);
    if (n >= 0 && static_cast<size_t>(n) >= want) return;
    if (steady_clock::now() > deadline)
      fail("{}: the {} holds {} of the {} queued bytes after 2 s", what, end, n, want);
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
  set_termios(master, quiet, what);
  try {
    if (!input.empty()) {
      write_all(master, input, what, "slave's input");
      wait_queued(slave, lines, what, "slave's input");
      // The rest of a canonical line cannot be seen from here: give the kernel a moment.
      if (canon && lines && lines < input.size())
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!q.to_master.empty()) {
      write_all(slave, q.to_master, what, "master's input");
      wait_queued(master, q.to_master.size(), what, "master's input");
    }
  } catch (const Error&) {
    ::ioctl(master, kTcsets2, &t);  // the terminal must not stay quiet after a failure
    throw;
  }
  set_termios(master, t, what);
}

}  // namespace cryo::kernel
