// Text taken from images or the system, made safe to print in a message.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace cryo {

// `s` with control characters (C0, DEL, C1), backslashes and bytes that are not UTF-8
// escaped as \n, \t, \\ or \xNN: a name from an image cannot move the cursor, clear the
// screen or hide the rest of the message. Well-formed UTF-8 text is kept as it is.
std::string printable(std::string_view s);

// The kind of file a st_mode says, for messages: "a regular file", "a FIFO", ...
const char* file_kind(mode_t mode);

}  // namespace cryo
