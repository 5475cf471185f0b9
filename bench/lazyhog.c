// lazyhog: the process of the lazy-pages benchmark (bench/lazy.sh).
//
//   lazyhog MIB READY_FILE GO_FILE RESULT_FILE [PROBES]
//
// As memhog: maps MIB MiB of private anonymous memory, writes every 64-bit word with a value
// derived from its offset (splitmix64), writes its pid into READY_FILE and polls for GO_FILE.
// Once GO_FILE exists (after a lazy restore), it first reads one word of PROBES pages picked
// at random (default 2000), timing each read: a page the lazy-pages daemon has not filled yet
// is a fault it serves. Then it checks every word of the area and writes into RESULT_FILE
// "PASS" or "FAIL ...", then one line "probe N SLOW MEDIAN_NS P99_NS MAX_NS" about the reads
// slower than 2 us (faults), and exits 0 or 1.
#define _GNU_SOURCE
#include <fcntl.h>
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
  return z | 1;
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
  size_t mib = strtoul(argv[1], NULL, 10), probes = argc == 6 ? strtoul(argv[5], NULL, 10) : 2000;
  if (mib == 0 || probes == 0) return 2;
  size_t len = mib << 20, words = len / 8, pages = len / 4096;
  uint64_t* area = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (area == MAP_FAILED) {
    perror("lazyhog: mmap");
    return 2;
  }
  for (size_t i = 0; i < words; i++) area[i] = pattern(i);
  // The probe's pages and its buffers, picked and touched before the dump.
  size_t* pick = malloc(probes * sizeof *pick);
  uint64_t* lat = malloc(probes * sizeof *lat);
  if (!pick || !lat) return 2;
  uint64_t seed = 12345;
  for (size_t i = 0; i < probes; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    pick[i] = (seed >> 17) % pages;
    lat[i] = 0;
  }
  char buf[256];
  snprintf(buf, sizeof buf, "%d\n", (int)getpid());
  if (write_file(argv[2], buf) != 0) return 2;
  struct stat st;
  const struct timespec tick = {0, 1000 * 1000};
  while (stat(argv[3], &st) != 0) nanosleep(&tick, NULL);

  volatile uint64_t sink = 0;
  size_t slow = 0;
  for (size_t i = 0; i < probes; i++) {
    uint64_t t0 = now_ns();
    sink += area[pick[i] * 512];
    uint64_t d = now_ns() - t0;
    if (d > 2000) lat[slow++] = d;
  }
  (void)sink;
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < words; i++)
    if (area[i] != pattern(i) && !bad++) first = i;
  char out[512];
  int n = bad ? snprintf(out, sizeof out, "FAIL %zu of %zu words wrong, first at word %zu\n", bad,
                         words, first)
              : snprintf(out, sizeof out, "PASS\n");
  qsort(lat, slow, sizeof *lat, cmp_u64);
  snprintf(out + n, sizeof out - n, "probe %zu %zu %llu %llu %llu\n", probes, slow,
           (unsigned long long)(slow ? lat[slow / 2] : 0),
           (unsigned long long)(slow ? lat[slow * 99 / 100] : 0),
           (unsigned long long)(slow ? lat[slow - 1] : 0));
  write_file(argv[4], out);
  return bad ? 1 : 0;
}
