/* A tree that must outlive a killed or interrupted cryo (tests/cr/kill-trial.sh).
 *
 *   survivor WORKDIR [MIB]
 *
 * The root fills MIB (default 512) MiB with a pattern and runs four threads: one keeps
 * values in r12 and xmm7 across a busy loop and checks them, one reads a sequence of
 * numbers from a pipe that a child process writes every millisecond (none lost, none
 * repeated), one sleeps in clock_nanosleep (it must never see EINTR), and the main
 * thread waits in poll. It writes WORKDIR/ready (its pid) once set up.
 *
 * A check is asked by writing N to WORKDIR/check-req: the root then checks the whole
 * pattern, that every thread and the child made progress since the last check, and that
 * its signal mask is still its own, and writes WORKDIR/check-N: "PASS" or the failures.
 * WORKDIR/stop ends the tree.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static uint64_t *mem;
static size_t words;
static volatile uint64_t reg_loops, pipe_reads, sleeps;
static volatile int failed_regs, failed_pipe, failed_sleep;
static char fail_text[4096];
static int pipe_fd;

static uint64_t pattern(size_t i) { return (i * 0x9e3779b97f4a7c15ull) ^ 0x5a5a5a5a12345678ull; }

static void note(const char *what)
{
	size_t n = strlen(fail_text);
	snprintf(fail_text + n, sizeof fail_text - n, "FAIL: %s\n", what);
}

static void *regs_thread(void *arg)
{
	(void)arg;
	for (uint64_t a = 1;; a++) {
		uint64_t x = 0, r = 0;
		__asm__ volatile("movq %2, %%xmm7\n\t"
				 "movq %2, %%r12\n\t"
				 "mov $20000, %%ecx\n"
				 "1: pause\n\t"
				 "dec %%ecx\n\t"
				 "jnz 1b\n\t"
				 "movq %%xmm7, %0\n\t"
				 "movq %%r12, %1\n\t"
				 : "=r"(x), "=r"(r)
				 : "r"(a)
				 : "rcx", "r12", "xmm7", "cc");
		if (x != a || r != a)
			failed_regs = 1;
		reg_loops++;
	}
	return NULL;
}

static void *pipe_thread(void *arg)
{
	(void)arg;
	uint32_t last = 0;
	for (;;) {
		uint32_t v;
		ssize_t n = read(pipe_fd, &v, sizeof v);
		if (n < 0 && errno == EINTR) {
			failed_pipe = 2;
			continue;
		}
		if (n != sizeof v) {
			failed_pipe = 3;
			return NULL;
		}
		if (last && v != last + 1)
			failed_pipe = 1;
		last = v;
		pipe_reads++;
	}
	return NULL;
}

static void *sleep_thread(void *arg)
{
	(void)arg;
	for (;;) {
		struct timespec ts = {0, 5 * 1000 * 1000};
		int r = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
		if (r == EINTR)
			failed_sleep = 1;
		sleeps++;
	}
	return NULL;
}

static void child(int fd)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (uint32_t v = 1;; v++) {
		if (write(fd, &v, sizeof v) != sizeof v)
			_exit(0);
		struct timespec ts = {0, 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static int file_exists(const char *name)
{
	char p[2300];
	cr_path(p, sizeof p, name);
	return access(p, F_OK) == 0;
}

static long read_number(const char *name)
{
	char p[2300], buf[64] = "";
	cr_path(p, sizeof p, name);
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	return n > 0 ? strtol(buf, NULL, 10) : -1;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	snprintf(cr_dir, sizeof cr_dir, "%s", argv[1]);
	size_t mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 512;
	int p[2];
	if (pipe(p) < 0)
		return 3;
	pid_t kid = fork();
	if (kid == 0) {
		close(p[0]);
		child(p[1]);
	}
	close(p[1]);
	pipe_fd = p[0];

	words = mib * 1024 * 1024 / sizeof(uint64_t);
	mem = mmap(NULL, words * sizeof(uint64_t), PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 4;
	for (size_t i = 0; i < words; i++)
		mem[i] = pattern(i);

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	sigaddset(&mask, SIGWINCH);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	pthread_t t;
	pthread_create(&t, NULL, regs_thread, NULL);
	pthread_create(&t, NULL, pipe_thread, NULL);
	pthread_create(&t, NULL, sleep_thread, NULL);

	char pid[32];
	int len = snprintf(pid, sizeof pid, "%d", (int)getpid());
	cr_write_file("ready", pid, (size_t)len);

	uint64_t seen_regs = 0, seen_pipe = 0, seen_sleeps = 0;
	long last_req = 0;
	for (;;) {
		poll(NULL, 0, 20);
		if (file_exists("stop"))
			break;
		long req = read_number("check-req");
		if (req <= 0 || req == last_req)
			continue;
		last_req = req;
		fail_text[0] = 0;
		for (size_t i = 0; i < words; i++)
			if (mem[i] != pattern(i)) {
				char m[128];
				snprintf(m, sizeof m, "memory word %zu changed", i);
				note(m);
				break;
			}
		if (reg_loops == seen_regs)
			note("the register thread made no progress");
		if (pipe_reads == seen_pipe)
			note("the pipe thread made no progress");
		if (sleeps == seen_sleeps)
			note("the sleeping thread made no progress");
		if (failed_regs)
			note("r12 or xmm7 changed under the register thread");
		if (failed_pipe == 1)
			note("a number from the pipe was lost or repeated");
		if (failed_pipe == 2)
			note("read from the pipe failed with EINTR");
		if (failed_pipe == 3)
			note("the pipe was closed");
		if (failed_sleep)
			note("clock_nanosleep returned EINTR");
		sigset_t now;
		pthread_sigmask(SIG_BLOCK, NULL, &now);
		if (!sigismember(&now, SIGUSR2) || !sigismember(&now, SIGWINCH) ||
		    sigismember(&now, SIGTERM))
			note("the signal mask changed");
		int st;
		if (waitpid(kid, &st, WNOHANG) != 0)
			note("the child is gone");
		seen_regs = reg_loops;
		seen_pipe = pipe_reads;
		seen_sleeps = sleeps;
		char name[64];
		snprintf(name, sizeof name, "check-%ld", req);
		if (fail_text[0])
			cr_write_file(name, fail_text, strlen(fail_text));
		else
			cr_write_file(name, "PASS\n", 5);
	}
	kill(kid, SIGKILL);
	return 0;
}
