// Runs one of the system's tools (nft, iptables) to completion: the network lock's only way to
// the kernel's packet filter that the user can read back with the same tool.
#pragma once

#include <string>
#include <vector>

namespace cryo::net {

struct ToolResult {
  int status = -1;     // exit status; -1 when it did not exit normally
  std::string output;  // what it wrote on stdout and stderr
};

// Runs argv[0] (looked up in PATH) with `input` on its stdin. Waits
// at most `seconds`, then kills it. Throws when it cannot be started (naming the program and
// the Debian package that has it) or does not end in time.
ToolResult run_tool(const std::vector<std::string>& argv, const std::string& input,
                    const char* package, int seconds = 10);

}  // namespace cryo::net
