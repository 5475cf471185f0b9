/* cowhog MIB CHILDREN DIR: a pre-fork server's memory. The parent writes MIB MiB of private
 * anonymous memory (splitmix64 of the word index), then forks CHILDREN children that only read
 * it, so every page is shared copy-on-write by CHILDREN + 1 processes. When all are set, the
 * parent writes DIR/ready (its pid) and DIR/pids (every pid of the tree); then each process
 * polls for DIR/go, checks every word of the area and writes DIR/result-PID (PASS or FAIL). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static const char *dir;

static void put(const char *name, const char *text)
{
	char tmp[4096], path[4096];
	snprintf(tmp, sizeof tmp, "%s/.%s.%d", dir, name, (int)getpid());
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(tmp, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
		_exit(3);
}

static void wait_go(void)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/go", dir);
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	while (access(path, F_OK) != 0)
		nanosleep(&ts, NULL);
}

static void check(const uint64_t *a, size_t words)
{
	size_t bad = 0;
	for (size_t i = 0; i < words; i++)
		if (a[i] != mix(i))
			bad++;
	char name[64], text[128];
	snprintf(name, sizeof name, "result-%d", (int)getpid());
	if (bad)
		snprintf(text, sizeof text, "FAIL %zu of %zu words differ\n", bad, words);
	else
		snprintf(text, sizeof text, "PASS\n");
	put(name, text);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: cowhog MIB CHILDREN DIR\n");
		return 2;
	}
	size_t words = (size_t)atol(argv[1]) << 17;
	int children = atoi(argv[2]);
	dir = argv[3];
	uint64_t *a = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (size_t i = 0; i < words; i++)
		a[i] = mix(i);
	int up[2];
	if (pipe(up) < 0)
		return 1;
	char pids[65536];
	int n = snprintf(pids, sizeof pids, "%d\n", (int)getpid());
	for (int k = 0; k < children; k++) {
		pid_t c = fork();
		if (c < 0)
			return 1;
		if (c == 0) {
			volatile uint64_t sum = 0;
			for (size_t i = 0; i < words; i += 512)
				sum += a[i]; /* reads: the pages stay shared */
			if (write(up[1], "c", 1) != 1)
				_exit(3);
			wait_go();
			check(a, words);
			_exit(0);
		}
		n += snprintf(pids + n, sizeof pids - (size_t)n, "%d\n", (int)c);
	}
	char c;
	for (int k = 0; k < children; k++)
		if (read(up[0], &c, 1) != 1)
			return 1;
	put("pids", pids);
	char me[32];
	snprintf(me, sizeof me, "%d\n", (int)getpid());
	put("ready", me);
	wait_go();
	check(a, words);
	for (int k = 0; k < children; k++)
		wait(NULL);
	return 0;
}
