// x86_64 register state: general registers, the xsave area, and their image form.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <cstdint>
#include <string>

#include "core-x86.pb.h"

namespace cryo::arch {

using Regs = user_regs_struct;

Regs get_regs(pid_t tid);
void set_regs(pid_t tid, const Regs& r);

// The task's whole xsave area in the standard (non-compacted) format, as PTRACE_GETREGSET
// NT_X86_XSTATE returns it.
std::string get_xstate(pid_t tid);
void set_xstate(pid_t tid, const std::string& area);
// How many bytes of an xsave area (standard format) its components in use span: the legacy
// area and header, up to the end of the last component set in XSTATE_BV (bit `also` too).
size_t xstate_used_size(const std::string& area, int also = -1);

void regs_to_image(const Regs& r, user_x86_regs_entry* e);
Regs regs_from_image(const user_x86_regs_entry& e);

void xstate_to_image(const std::string& area, user_x86_fpregs_entry* e);
// Fills `area` (a buffer of this CPU's xsave size, e.g. the target's current area) from the image.
void xstate_from_image(const user_x86_fpregs_entry& e, std::string& area);

// Images are untrusted: these refuse, naming `image` and the field, registers a thread cannot
// run from (ip or sp 0 or outside user space, the trap flag, selectors of another mode) and
// fp/xsave arrays whose sizes differ from CRIU's format or components this CPU lacks.
void check_regs_image(const user_x86_regs_entry& e, const std::string& image);
void check_fpregs_image(const user_x86_fpregs_entry& e, uint64_t xfeatures,
                        const std::string& image);
// The xsave components this CPU and kernel have enabled (XCR0).
uint64_t cpu_xfeatures();

// The thread's GDT TLS descriptors (set_thread_area; 32-bit code uses them), read with
// PTRACE_GET_THREAD_AREA: CRIU's images always hold all three. A kernel without 32-bit
// emulation has none to read: then none are written.
void tls_to_image(pid_t tid, thread_info_x86* ti);
// Puts back the descriptors in use; an empty one is what a new thread has already. An entry
// number outside the TLS slots is refused, naming `image`.
void tls_from_image(pid_t tid, const thread_info_x86& ti, const std::string& image);

// A task stopped inside an interrupted syscall carries -ERESTART* in ax; make it re-execute
// the call on resume, as the kernel would after a signal without handler. `eintr_nohand`:
// calls the kernel restarts only when no handler runs (pause, sigsuspend, ppoll, select...)
// return EINTR instead, within their contract: for a resume that cannot know whether a
// pending signal will be handled first (a wakeup must not be lost).
void prepare_restart(Regs& r, bool eintr_nohand = false);

// The instruction pair "syscall" (0f 05).
constexpr uint16_t kSyscallInsn = 0x050f;

}  // namespace cryo::arch
