// criu_opts as command-line words: the RPC fills cli::Options through the command line's
// parser, so an option does over RPC exactly what it does as a flag, and is refused alike.
#pragma once

#include <string>
#include <vector>

#include "rpc.pb.h"

namespace cryo::rpc {

// The words one field of criu_opts stands for; or, for a field with no command-line
// counterpart that cryo cannot honour, why (refusal).
struct FieldWords {
  std::string field;  // "root", "manage_cgroups_mode", ...
  std::vector<std::string> words;
  std::string refusal;
};

// Every field the client set, except the ones the RPC layer handles itself (the directories,
// the log, pid, notify_scripts, config_file).
std::vector<FieldWords> option_words(const criu_opts& opts, bool dumping);

}  // namespace cryo::rpc
