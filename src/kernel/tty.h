// Terminal ioctls cryo needs, without <termios.h> (whose struct termios is the C library's,
// not the kernel's), and the one delicate operation shared by dump and restore: putting
// queued bytes back into a pty pair so that both ends read exactly those bytes again.
#pragma once

#include <sys/ioctl.h>

#include <cstdint>
#include <string>

namespace cryo::kernel {

// The kernel's struct termios2 (TCGETS2/TCSETS2): termios with explicit speeds.
struct Termios2 {
  uint32_t c_iflag, c_oflag, c_cflag, c_lflag;
  uint8_t c_line;
  uint8_t c_cc[19];
  uint32_t c_ispeed, c_ospeed;
};
static_assert(sizeof(Termios2) == 44);

constexpr unsigned long kTcgets2 = _IOR('T', 0x2A, Termios2);
constexpr unsigned long kTcsets2 = _IOW('T', 0x2B, Termios2);

// Queued bytes of one pty pair: what the slave has still to read (input that came from the
// master) and what the master has still to read (output the slave wrote).
struct PtyQueues {
  std::string to_slave;
  std::string to_master;
};

// Takes the queued bytes out of a pty pair. `slave` may be -1 (no slave open): then the
// slave's input is not read. `termios` is the slave's (read from the master). The slave's
// termios is changed while reading: call pty_requeue() afterwards, which sets it back.
// Canonical input loses its line marks when read: pty_requeue() rebuilds them.
PtyQueues pty_drain(int master, int slave, const Termios2& termios, bool packet_mode,
                    const std::string& what);

// Queued canonical input as it is written back: an end-of-file mark, a NUL that ends a line in
// the queue, becomes the EOF character again; `readable` is what FIONREAD on the slave shows
// once the complete lines are in (it leaves out the partial last line and the EOF marks).
struct CanonInput {
  std::string bytes;
  size_t readable = 0;
};
CanonInput canon_input(const std::string& queued, const Termios2& termios);

// Puts `q` back (or into a new pair) with the line discipline's processing switched off, so
// that no byte is echoed, translated or taken as a signal or line-editing character again;
// waits until the kernel has queued every byte, then sets the slave's termios to `termios`.
// `what` names the pty in errors.
void pty_requeue(int master, int slave, const Termios2& termios, const PtyQueues& q,
                 const std::string& what);

}  // namespace cryo::kernel
