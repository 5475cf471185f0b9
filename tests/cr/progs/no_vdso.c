/* no_vdso: processes that unmapped their vDSO. The root unmapped [vdso] and its data pages
 * ([vvar], [vvar_vclock]); a child unmapped only [vdso] and kept the data pages. After
 * restore: the same special mappings at the same addresses (none of cryo's left behind),
 * the same AT_SYSINFO_EHDR in /proc/self/auxv, and syscalls and signal handlers work.
 * (After the unmap nothing may call into the vDSO: time comes from raw syscalls.) */
#define _GNU_SOURCE
#include "common.h"
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static char specials_before[1024], specials_after[1024];
static volatile int handled;

static void on_usr2(int s)
{
	(void)s;
	handled++;
}

/* "[vdso] 7ff...-7ff...\n" lines of every special mapping but [stack] and [heap]. */
static void specials(char *out, size_t n)
{
	static char maps[65536];
	ssize_t len = cr_read_file("/proc/self/maps", maps, sizeof maps - 1);
	out[0] = 0;
	if (len < 0)
		return;
	maps[len] = 0;
	size_t o = 0;
	for (char *l = maps; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		char *br = strchr(l, '[');
		char *nl = strchr(l, '\n');
		if (!br || (nl && br > nl) || !strncmp(br, "[stack]", 7) || !strncmp(br, "[heap]", 6))
			continue;
		unsigned long a = 0, b = 0;
		sscanf(l, "%lx-%lx", &a, &b);
		int w = (int)(strcspn(br, "\n"));
		o += (size_t)snprintf(out + o, n - o, "%.*s %lx-%lx\n", w, br, a, b);
	}
}

static unsigned long sysinfo_ehdr(void)
{
	unsigned long av[128];
	ssize_t n = cr_read_file("/proc/self/auxv", (char *)av, sizeof av);
	for (ssize_t i = 0; i + 1 < n / (ssize_t)sizeof(long); i += 2)
		if (av[i] == 33) /* AT_SYSINFO_EHDR */
			return av[i + 1];
	return 0;
}

static void unmap_named(int with_data)
{
	static char maps[65536];
	ssize_t len = cr_read_file("/proc/self/maps", maps, sizeof maps - 1);
	if (len < 0)
		_exit(40);
	maps[len] = 0;
	for (char *l = maps; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		unsigned long a = 0, b = 0;
		sscanf(l, "%lx-%lx", &a, &b);
		char *nl = strchr(l, '\n');
		char *br = strchr(l, '[');
		if (!br || (nl && br > nl))
			continue;
		int vdso = !strncmp(br, "[vdso]", 6);
		int data = !strncmp(br, "[vvar]", 6) || !strncmp(br, "[vvar_vclock]", 13);
		if ((vdso || (with_data && data)) && munmap((void *)a, b - a))
			_exit(41);
	}
}

static void check(const char *who)
{
	specials(specials_after, sizeof specials_after);
	if (strcmp(specials_before, specials_after))
		cr_fail("%s: special mappings before:\n%safter restore:\n%s", who, specials_before,
			specials_after);
	if (strstr(specials_after, "[vdso]"))
		cr_fail("%s: has a [vdso] after restore", who);
	struct timespec ts;
	if (syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts))
		cr_fail("%s: clock_gettime syscall: %s", who, strerror(errno));
	signal(SIGUSR2, on_usr2);
	raise(SIGUSR2);
	if (handled != 1)
		cr_fail("%s: SIGUSR2 handler ran %d times", who, handled);
}

int main(int argc, char **argv)
{
	cr_init(argc, argv);
	unsigned long ehdr0 = sysinfo_ehdr();
	pid_t kid = fork();
	if (kid == 0) {
		unmap_named(0);
		specials(specials_before, sizeof specials_before);
		if (!strstr(specials_before, "[vvar"))
			cr_fail("setup: the child has no [vvar] left to keep");
		cr_ready_named("ready-child");
		cr_wait_go();
		check("child");
		if (sysinfo_ehdr() != ehdr0)
			cr_fail("child: AT_SYSINFO_EHDR %#lx, was %#lx", sysinfo_ehdr(), ehdr0);
		_exit(cr_verdict("result-child"));
	}
	unmap_named(1);
	specials(specials_before, sizeof specials_before);
	if (strstr(specials_before, "[vdso]") || strstr(specials_before, "[vvar"))
		cr_fail("setup: still mapped:\n%s", specials_before);
	cr_wait_for("ready-child");
	cr_ready();
	cr_wait_go();
	check("root");
	if (sysinfo_ehdr() != ehdr0)
		cr_fail("root: AT_SYSINFO_EHDR %#lx, was %#lx", sysinfo_ehdr(), ehdr0);
	cr_check_child(kid, "child", "result-child");
	cr_finish();
	return 0;
}
