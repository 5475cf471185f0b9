// cryo's image tool: `cryo decode`, `cryo encode` (crit's JSON, the same bytes as crit's) and
// `cryo show` (a readable summary of an images directory).
#pragma once

#include <string>

namespace cryo::imgtool {

// True for the verbs run() handles ("decode", "encode", "show").
bool is_verb(const std::string& verb);

// Runs `cryo VERB ARGS...`; argv[0] is the verb. Returns the exit status; a failure has
// printed one "Error: ..." line.
int run(const std::string& verb, int argc, char** argv);

}  // namespace cryo::imgtool
