/* Shared helpers for the checkpoint/restore test programs (tests/cr/progs).
 *
 * Protocol with tests/cr/run-test.sh:
 *   prog WORKDIR
 *   1. build state;
 *   2. write WORKDIR/ready (temp name + rename) holding our pid;
 *   3. wait until WORKDIR/go exists (nanosleep 20 ms + access());
 *   4. check the state; each failed check appends "FAIL: ..." to
 *      WORKDIR/result-<pid>.txt at once, and at the end WORKDIR/result holds
 *      "PASS" or all failure lines; exit 0 on pass, 1 on failure.
 *
 * No stdio streams and no malloc here: some programs compare their memory
 * layout before and after, so the helpers must not change it.
 * The driver sends SIGUSR1 to the root after touching go, so cr_init()
 * ignores SIGUSR1; programs that want it install their own handler after.
 */
#ifndef CR_COMMON_H
#define CR_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define CR_FN static __attribute__((unused))

static char cr_dir[2048];
static char cr_fails[1 << 16];
static size_t cr_fails_len;
static int cr_nfails;

CR_FN void cr_path(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", cr_dir, name);
}

CR_FN int cr_write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Write WORKDIR/name atomically (temp file + rename). */
CR_FN void cr_write_file(const char *name, const char *data, size_t len)
{
	char tmp[2300], path[2300];
	snprintf(tmp, sizeof tmp, "%s/.%s.tmp.%d", cr_dir, name, (int)getpid());
	cr_path(path, sizeof path, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		_exit(3);
	if (cr_write_all(fd, data, len) < 0)
		_exit(3);
	close(fd);
	if (rename(tmp, path) < 0)
		_exit(3);
}

CR_FN void cr_append_file(const char *name, const char *data, size_t len)
{
	char path[2300];
	cr_path(path, sizeof path, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	cr_write_all(fd, data, len);
	close(fd);
}

CR_FN int cr_exists(const char *name)
{
	char path[2300];
	cr_path(path, sizeof path, name);
	return access(path, F_OK) == 0;
}

CR_FN void cr_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

__attribute__((format(printf, 1, 2)))
CR_FN void cr_fail(const char *fmt, ...)
{
	char line[1024];
	int n = snprintf(line, sizeof line, "FAIL: ");
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof line - (size_t)n - 2, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof line - 2)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	line[n] = 0;
	cr_nfails++;
	if (cr_fails_len + (size_t)n < sizeof cr_fails) {
		memcpy(cr_fails + cr_fails_len, line, (size_t)n);
		cr_fails_len += (size_t)n;
	}
	char name[64];
	snprintf(name, sizeof name, "result-%d.txt", (int)getpid());
	cr_append_file(name, line, (size_t)n);
}

/* Diagnostics that are not failures (WORKDIR/notes-<pid>.txt). */
__attribute__((format(printf, 1, 2)))
CR_FN void cr_note(const char *fmt, ...)
{
	char line[1024], name[64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof line - 2)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	snprintf(name, sizeof name, "notes-%d.txt", (int)getpid());
	cr_append_file(name, line, (size_t)n);
}

#define CHECK_U(what, exp, got)                                                   \
	do {                                                                      \
		unsigned long long e_ = (unsigned long long)(exp);                \
		unsigned long long g_ = (unsigned long long)(got);                \
		if (e_ != g_)                                                     \
			cr_fail("%s expected %llu got %llu", (what), e_, g_);     \
	} while (0)

#define CHECK_X(what, exp, got)                                                   \
	do {                                                                      \
		unsigned long long e_ = (unsigned long long)(exp);                \
		unsigned long long g_ = (unsigned long long)(got);                \
		if (e_ != g_)                                                     \
			cr_fail("%s expected 0x%llx got 0x%llx", (what), e_, g_); \
	} while (0)

#define CHECK_I(what, exp, got)                                                   \
	do {                                                                      \
		long long e_ = (long long)(exp);                                  \
		long long g_ = (long long)(got);                                  \
		if (e_ != g_)                                                     \
			cr_fail("%s expected %lld got %lld", (what), e_, g_);     \
	} while (0)

#define CHECK_S(what, exp, got)                                                   \
	do {                                                                      \
		const char *e_ = (exp), *g_ = (got);                              \
		if (strcmp(e_, g_) != 0)                                          \
			cr_fail("%s expected \"%s\" got \"%s\"", (what), e_, g_); \
	} while (0)

CR_FN void cr_init(int argc, char **argv)
{
	if (argc < 2 || strlen(argv[1]) >= sizeof cr_dir - 64)
		_exit(2);
	strcpy(cr_dir, argv[1]);
	signal(SIGUSR1, SIG_IGN);
}

CR_FN void cr_ready_named(const char *name)
{
	char b[32];
	int n = snprintf(b, sizeof b, "%d\n", (int)getpid());
	cr_write_file(name, b, (size_t)n);
}

CR_FN void cr_ready(void)
{
	cr_ready_named("ready");
}

CR_FN void cr_wait_for(const char *name)
{
	while (!cr_exists(name))
		cr_sleep_ms(20);
}

CR_FN void cr_wait_go(void)
{
	cr_wait_for("go");
}

/* Write the verdict to WORKDIR/name; returns the exit code to use. */
CR_FN int cr_verdict(const char *name)
{
	if (cr_nfails == 0)
		cr_write_file(name, "PASS\n", 5);
	else
		cr_write_file(name, cr_fails, cr_fails_len);
	return cr_nfails ? 1 : 0;
}

CR_FN void cr_finish(void)
{
	_exit(cr_verdict("result"));
}

/* Read a whole file with open/read (no malloc). Returns length or -1. */
CR_FN ssize_t cr_read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	for (;;) {
		if (len == cap) {
			close(fd);
			return -1;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	return (ssize_t)len;
}

/* Value of a "Key:\tvalue" line of a status file (/proc/self/status,
 * /proc/self/task/TID/status) into out (trimmed). */
CR_FN int cr_proc_field(const char *path, const char *key, char *out, size_t n)
{
	static char buf[16384];
	ssize_t len = cr_read_file(path, buf, sizeof buf - 1);
	if (len < 0)
		return -1;
	buf[len] = 0;
	size_t kl = strlen(key);
	for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, key, kl) == 0 && l[kl] == ':') {
			char *v = l + kl + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			size_t i = 0;
			while (v[i] && v[i] != '\n' && i + 1 < n) {
				out[i] = v[i];
				i++;
			}
			out[i] = 0;
			return 0;
		}
	}
	return -1;
}

CR_FN int cr_status_field(const char *key, char *out, size_t n)
{
	return cr_proc_field("/proc/self/status", key, out, n);
}

/* The same of thread `tid` of this process; "" when there is none. */
CR_FN void cr_task_field(pid_t tid, const char *key, char *out, size_t n)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
	if (cr_proc_field(path, key, out, n) < 0)
		out[0] = 0;
}

/* Waits for child `pid` (named `who`), which writes its verdict to WORKDIR/result_name:
 * anything but a clean exit 0 is a failure quoting that verdict. */
#include <sys/wait.h>
CR_FN void cr_check_child(pid_t pid, const char *who, const char *result_name)
{
	int st = 0;
	if (waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return;
	char r[4096] = "", path[2300];
	cr_path(path, sizeof path, result_name);
	ssize_t n = cr_read_file(path, r, sizeof r - 1);
	r[n > 0 ? n : 0] = 0;
	cr_fail("%s: status %#x: %s", who, st, r);
}

/* Sorted list of open fds (via getdents64, no malloc). Returns count. */
#include <sys/syscall.h>
struct cr_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

CR_FN int cr_list_fds(int *fds, int max)
{
	static char buf[32768];
	int n = 0;
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	for (;;) {
		long r = syscall(SYS_getdents64, dfd, buf, sizeof buf);
		if (r <= 0)
			break;
		for (long off = 0; off < r;) {
			struct cr_dirent64 *d = (struct cr_dirent64 *)(buf + off);
			off += d->d_reclen;
			if (d->d_name[0] < '0' || d->d_name[0] > '9')
				continue;
			int fd = atoi(d->d_name);
			if (fd == dfd || n >= max)
				continue;
			fds[n++] = fd;
		}
	}
	close(dfd);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
			int t = fds[j];
			fds[j] = fds[j - 1];
			fds[j - 1] = t;
		}
	return n;
}

CR_FN void cr_fmt_fds(char *out, size_t n, const int *fds, int cnt)
{
	size_t o = 0;
	out[0] = 0;
	for (int i = 0; i < cnt && o + 16 < n; i++)
		o += (size_t)snprintf(out + o, n - o, "%s%d", i ? "," : "", fds[i]);
}

/* Compare the current fd list with a recorded one. */
CR_FN void cr_check_fds(const int *before, int nbefore)
{
	int now[1024];
	int n = cr_list_fds(now, 1024);
	int same = n == nbefore;
	for (int i = 0; same && i < n; i++)
		same = now[i] == before[i];
	if (!same) {
		char a[4096], b[4096];
		cr_fmt_fds(a, sizeof a, before, nbefore);
		cr_fmt_fds(b, sizeof b, now, n);
		cr_fail("open fds expected [%s] got [%s]", a, b);
	}
}

CR_FN void cr_check_threads_1(void)
{
	char v[64];
	if (cr_status_field("Threads", v, sizeof v) < 0)
		cr_fail("cannot read Threads: from /proc/self/status");
	else
		CHECK_S("/proc/self/status Threads", "1", v);
}

#endif
