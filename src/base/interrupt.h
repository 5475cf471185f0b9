// SIGINT, SIGTERM, SIGHUP and SIGQUIT ask cryo to stop. The handler only notes the signal;
// cryo acts on it at points where stopping leaves every task whole (interrupt_point()), and
// the usual unwinding then puts a dumped tree back or removes a half-restored one.
#pragma once

namespace cryo {

// Installs the handlers (with SA_RESTART: no call fails because of them).
void catch_stop_signals();
// Gives the signals their default action again (once the restored tree runs on its own).
void default_stop_signals();
// The stop signal received, 0 if none.
int stop_signal();
// Throws Error("interrupted by SIG...") when a stop signal came.
void interrupt_point();

}  // namespace cryo
