/* signals_inflight: no signal may be lost or duplicated by a checkpoint.
 * A child ("sender") streams SIGRTMIN+2 with values 1, 2, 3, ... to the root
 * (sigqueue, ~5000/s) until WORKDIR/go exists, then writes the count it sent
 * to WORKDIR/sent and exits. The root records every value in its handler.
 * Real-time signals queue and arrive in order, so after restore the root must
 * have received exactly 1..N in order: signals pending in the root when the
 * tree was frozen must be dumped and restored (or, with --leave-running,
 * delivered afterwards), never discarded.
 */
#include "common.h"
#include <sys/wait.h>

#define CAP (1 << 20)
#define SIG (SIGRTMIN + 2)

static int seen[CAP];
static volatile int nseen;
static volatile int bad_pid, bad_code;
static pid_t sender;

static void on_sig(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (si->si_code != SI_QUEUE)
		bad_code++;
	else if (si->si_pid != sender)
		bad_pid++;
	if (nseen < CAP)
		seen[nseen] = si->si_value.sival_int;
	nseen++;
}

static void send_stream(pid_t to)
{
	int i = 1;
	while (i < CAP) {
		if (i % 64 == 0 && cr_exists("go"))
			break;
		union sigval v = { .sival_int = i };
		if (sigqueue(to, SIG, v) < 0) {
			if (errno == EAGAIN) { /* queue full: retry the same value */
				cr_sleep_ms(1);
				continue;
			}
			cr_fail("sender: sigqueue(%d, value %d): %s", to, i, strerror(errno));
			break;
		}
		i++;
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);
	}
	char b[32];
	int n = snprintf(b, sizeof b, "%d\n", i - 1);
	cr_write_file("sent", b, (size_t)n);
	_exit(cr_verdict("result-sender"));
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sig;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIG, &sa, NULL);

	char path[2300];
	cr_path(path, sizeof path, "sent");
	unlink(path);
	pid_t me = getpid();
	/* The stream may start before fork() returns here: no signal may be handled while
	 * `sender` is not set yet. */
	sigset_t sig, old;
	sigemptyset(&sig);
	sigaddset(&sig, SIG);
	sigprocmask(SIG_BLOCK, &sig, &old);
	sender = fork();
	if (sender > 0)
		sigprocmask(SIG_SETMASK, &old, NULL);
	if (sender < 0) {
		cr_fail("setup: fork: %s", strerror(errno));
		cr_finish();
	}
	if (sender == 0) {
		sender = getpid();
		cr_ready_named("ready-sender");
		send_stream(me);
	}
	while (nseen < 200) /* the stream is flowing */
		cr_sleep_ms(5);
	cr_ready();
	cr_wait_go();

	int st = 0;
	pid_t r;
	while ((r = waitpid(sender, &st, 0)) < 0 && errno == EINTR)
		;
	if (r != sender)
		cr_fail("waitpid(sender %d): %s", sender, strerror(errno));
	else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		cr_fail("sender ended with status 0x%x (see result-sender)", st);
	char buf[64];
	ssize_t n = cr_read_file(path, buf, sizeof buf - 1);
	buf[n < 0 ? 0 : n] = 0;
	int sent = atoi(buf);
	if (sent <= 0)
		cr_fail("sender wrote no count to WORKDIR/sent");
	for (int i = 0; i < 50; i++) { /* all were queued before the sender exited */
		sigset_t p;
		sigpending(&p);
		if (!sigismember(&p, SIG) && nseen >= sent)
			break;
		cr_sleep_ms(10);
	}
	int got = nseen;
	if (got != sent)
		cr_fail("received %d signals, the sender sent %d (%s)", got, sent,
			got < sent ? "lost" : "duplicated");
	for (int k = 0; k < got && k < CAP; k++)
		if (seen[k] != k + 1) {
			cr_fail("signal #%d carried value %d, expected %d (a gap: signals lost; a repeat: "
				"duplicated)",
				k + 1, seen[k], k + 1);
			break;
		}
	CHECK_I("signals with si_code other than SI_QUEUE", 0, bad_code);
	CHECK_I("signals from a pid other than the sender", 0, bad_pid);
	cr_finish();
}
