/* dirtyhog MIB PERMILLE_PER_S DIR: a process that keeps writing its memory, for
 * bench/predump.sh. It maps MIB MiB of private anonymous memory and writes every page (each
 * 64-bit word of page p at generation g holds mix(p, g, word)), writes its pid to DIR/ready,
 * then every 10 ms writes the next pages of a fixed pseudo-random walk over all pages, at
 * PERMILLE_PER_S thousandths of the pages per second, each written page going one generation
 * up (kept in gen[], itself memory of the process). When DIR/go appears it stops writing and
 * checks every page against gen[] (the page being written when the tree was frozen may be at
 * either generation), and writes "PASS n pages" or "FAIL ..." to DIR/result.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL

static uint64_t mix(uint64_t p, uint64_t g, uint64_t w)
{
	uint64_t z = (p << 24) ^ (g << 8) ^ w;
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void fill(uint64_t *w, uint64_t p, uint64_t g)
{
	for (uint64_t i = 0; i < PAGE / 8; i++)
		w[i] = mix(p, g, i);
}

static int same(const uint64_t *w, uint64_t p, uint64_t g)
{
	for (uint64_t i = 0; i < PAGE / 8; i++)
		if (w[i] != mix(p, g, i))
			return 0;
	return 1;
}

static void put(const char *dir, const char *name, const char *text)
{
	char tmp[4096], path[4096];
	snprintf(tmp, sizeof tmp, "%s/.%s", dir, name);
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) < 0 || close(fd) < 0 || rename(tmp, path) < 0)
		_exit(2);
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	const uint64_t npages = strtoull(argv[1], NULL, 10) * (1 << 20) / PAGE;
	const uint64_t permille = strtoull(argv[2], NULL, 10);
	const char *dir = argv[3];
	char *mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
	uint32_t *gen = mmap(NULL, npages * 4, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || gen == MAP_FAILED)
		return 2;
	for (uint64_t p = 0; p < npages; p++)
		fill((uint64_t *)(mem + p * PAGE), p, 0);
	char b[64];
	snprintf(b, sizeof b, "%d\n", (int)getpid());
	put(dir, "ready", b);
	char go[4096];
	snprintf(go, sizeof go, "%s/go", dir);
	/* A walk over all pages: p -> p + step (mod npages), step odd and npages a power of 2. */
	const uint64_t step = (npages / 2 + 12345) | 1;
	volatile uint64_t cur = 0; /* the page being written */
	uint64_t at = 0, owed = 0;
	while (access(go, F_OK) != 0) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		owed += npages * permille; /* thousandths of a page per second, per 10 ms: /100000 */
		for (; owed >= 100000; owed -= 100000) {
			at = (at + step) % npages;
			cur = at;
			fill((uint64_t *)(mem + at * PAGE), at, gen[at] + 1);
			gen[at]++;
		}
	}
	uint64_t bad = 0, first = 0;
	for (uint64_t p = 0; p < npages; p++) {
		const uint64_t *w = (const uint64_t *)(mem + p * PAGE);
		if (same(w, p, gen[p]) || (p == cur && same(w, p, gen[p] + 1)))
			continue;
		if (!bad++)
			first = p;
	}
	char r[256];
	if (bad)
		snprintf(r, sizeof r, "FAIL %llu of %llu pages wrong, first %llu\n",
			 (unsigned long long)bad, (unsigned long long)npages, (unsigned long long)first);
	else
		snprintf(r, sizeof r, "PASS %llu pages\n", (unsigned long long)npages);
	put(dir, "result", r);
	return bad ? 1 : 0;
}
