// Named failure points for tests of the error paths: CRYO_FAULT=NAME makes cryo fail there.
#pragma once

namespace cryo {

// Throws Error("fault injected at NAME") when the environment asks for this point.
void fault_point(const char* name);
// True when the environment asks for point NAME: for injected events other than failures.
bool fault_wanted(const char* name);
// N when the environment asks for CRYO_FAULT=NAME=N, else -1: for faults at a count.
long fault_number(const char* name);

}  // namespace cryo
