// memhog: the process the benchmark checkpoints and restores.
//
//   memhog MIB READY_FILE GO_FILE RESULT_FILE [PROBES]
//
// Maps MIB MiB of private anonymous memory and writes every 64-bit word of it with a
// pseudo-random value derived from its offset (splitmix64), so no page is a zero page and
// the data does not compress. Then writes its pid into READY_FILE (atomically, by rename)
// and polls for GO_FILE with nanosleep. Once GO_FILE exists (i.e. after the restore), it
// checks every word of the area against the pattern and writes "PASS" or "FAIL ..." into
// RESULT_FILE, and exits 0 or 1.
//
// With PROBES (the lazy-pages benchmark, bench/lazy.sh): GO_FILE is polled every 1 ms, and
// once it exists (after a lazy restore) memhog first reads one word of PROBES pages picked at
// random, timing each read: a page the lazy-pages daemon has not filled yet is a fault it
// serves. RESULT_FILE then has a second line "probe N SLOW MEDIAN_NS P99_NS MAX_NS" about the
// reads slower than 2 us (faults).
//
// No file stays open while it waits: only stdio (which the runner points at /dev/null).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t pattern(uint64_t i) {  // splitmix64 of the word index
  uint64_t z = i * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return z | 1;  // never a zero word
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int cmp_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

// The probe's pages, picked (and its buffers touched) before the dump.
struct probe {
  size_t n, slow;
  size_t* pick;
  uint64_t* lat;
};

static int probe_init(struct probe* p, size_t n, size_t pages) {
  p->n = n;
  p->slow = 0;
  p->pick = malloc(n * sizeof *p->pick);
  p->lat = malloc(n * sizeof *p->lat);
  if (!p->pick || !p->lat) return -1;
  uint64_t seed = 12345;
  for (size_t i = 0; i < n; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    p->pick[i] = (seed >> 17) % pages;
    p->lat[i] = 0;
  }
  return 0;
}

static void probe_run(struct probe* p, const uint64_t* area) {
  volatile uint64_t sink = 0;
  for (size_t i = 0; i < p->n; i++) {
    uint64_t t0 = now_ns();
    sink += area[p->pick[i] * 512];
    uint64_t d = now_ns() - t0;
    if (d > 2000) p->lat[p->slow++] = d;
  }
  (void)sink;
  qsort(p->lat, p->slow, sizeof *p->lat, cmp_u64);
}

static int write_file(const char* path, const char* text) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return -1;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  size_t n = strlen(text);
  int ok = write(fd, text, n) == (ssize_t)n;
  if (close(fd) != 0) ok = 0;
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    fprintf(stderr, "usage: %s MIB READY_FILE GO_FILE RESULT_FILE [PROBES]\n", argv[0]);
    return 2;
  }
  char* end;
  unsigned long mib = strtoul(argv[1], &end, 10);
  if (*end || mib == 0) {
    fprintf(stderr, "memhog: bad size %s\n", argv[1]);
    return 2;
  }
  unsigned long probes = 0;
  if (argc == 6 && ((probes = strtoul(argv[5], &end, 10)) == 0 || *end)) {
    fprintf(stderr, "memhog: bad number of probes %s\n", argv[5]);
    return 2;
  }
  const char *ready = argv[2], *go = argv[3], *result = argv[4];
  size_t len = (size_t)mib << 20, words = len / sizeof(uint64_t);

  uint64_t* area = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (area == MAP_FAILED) {
    perror("memhog: mmap");
    return 2;
  }
  for (size_t i = 0; i < words; i++) area[i] = pattern(i);
  struct probe probe = {0};
  if (probes && probe_init(&probe, probes, len / 4096) != 0) {
    perror("memhog: probe buffers");
    return 2;
  }

  char buf[64];
  snprintf(buf, sizeof buf, "%d\n", (int)getpid());
  if (write_file(ready, buf) != 0) {
    perror("memhog: ready file");
    return 2;
  }

  struct stat st;
  const struct timespec tick = {0, (probes ? 1 : 20) * 1000 * 1000};
  while (stat(go, &st) != 0) nanosleep(&tick, NULL);  // EINTR: just poll again
  if (probes) probe_run(&probe, area);

  size_t bad = 0, first_bad = 0;
  uint64_t sum = 0;
  for (size_t i = 0; i < words; i++) {
    uint64_t v = area[i];
    sum += v;
    if (v != pattern(i) && bad++ == 0) first_bad = i;
  }
  char res[512];
  int n;
  if (bad == 0)
    n = snprintf(res, sizeof res, "PASS %lu MiB checksum %016" PRIx64 "\n", mib, sum);
  else
    n = snprintf(res, sizeof res, "FAIL %zu of %zu words differ, first at offset %#zx\n", bad,
                 words, first_bad * sizeof(uint64_t));
  if (probes) {
    size_t k = probe.slow;
    snprintf(res + n, sizeof res - n, "probe %zu %zu %llu %llu %llu\n", probe.n, k,
             (unsigned long long)(k ? probe.lat[k / 2] : 0),
             (unsigned long long)(k ? probe.lat[k * 99 / 100] : 0),
             (unsigned long long)(k ? probe.lat[k - 1] : 0));
  }
  if (write_file(result, res) != 0) return 1;
  return bad == 0 ? 0 : 1;
}
