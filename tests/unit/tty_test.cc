// How queued canonical terminal input is written back (kernel/tty).
#include <asm/termbits.h>
#include <gtest/gtest.h>

#include "kernel/tty.h"

using cryo::kernel::canon_input;
using cryo::kernel::Termios2;

namespace {

Termios2 cooked() {
  Termios2 t{};
  t.c_lflag = ICANON | ECHO | IEXTEN;
  t.c_cc[VEOF] = 4;
  return t;
}

TEST(CanonInput, LinesEofMarkAndPartialLine) {
  // The queue of "line one\n", "abc^D", "partial": the EOF mark is a NUL there.
  auto ci = canon_input(std::string("line one\nabc\0partial", 20), cooked());
  EXPECT_EQ(ci.bytes, std::string("line one\nabc\004partial", 20));
  EXPECT_EQ(ci.readable, 12u);  // 9 + 3: the mark and the partial line are not counted
}

TEST(CanonInput, OnlyAPartialLine) {
  auto ci = canon_input("no newline", cooked());
  EXPECT_EQ(ci.bytes, "no newline");
  EXPECT_EQ(ci.readable, 0u);
}

TEST(CanonInput, EolAndEol2EndLines) {
  Termios2 t = cooked();
  t.c_cc[VEOL] = ';';
  t.c_cc[VEOL2] = '|';
  EXPECT_EQ(canon_input("a;b|c", t).readable, 4u);
  t.c_lflag &= ~static_cast<uint32_t>(IEXTEN);  // VEOL2 needs IEXTEN
  EXPECT_EQ(canon_input("a;b|c", t).readable, 2u);
}

TEST(CanonInput, NulStaysWhenEofIsDisabled) {
  Termios2 t = cooked();
  t.c_cc[VEOF] = 0;
  auto ci = canon_input(std::string("a\0b\n", 4), t);
  EXPECT_EQ(ci.bytes, std::string("a\0b\n", 4));
  EXPECT_EQ(ci.readable, 4u);
}

}  // namespace
