// treehog: the process shapes of the shape benchmark (shapes.sh), each checking itself after
// the restore.
//
//   treehog procs N MIB DIR     N processes (the root and N-1 children), MIB MiB each
//   treehog vmas N DIR          one process with N private anonymous VMAs of one page
//   treehog threads N DIR       one process of N threads (the main one included)
//
// Memory is written with splitmix64 of the word index and of the task or page (as memhog),
// so no page is a zero page, the data does not compress, and pages of different tasks
// differ. Once the shape is made, DIR/ready holds the root's pid, DIR/pids every pid of the
// tree (one a line) and DIR/create_ns the time the shape took to make (the restore's limit).
// The tree then waits for DIR/go (the root polls it every 20 ms; children and threads wait
// on the root), after which:
//  - procs: every process checks its memory and exits 0/1; the root collects the statuses;
//  - vmas: every page's content and every VMA's protection in /proc/self/maps is checked;
//  - threads: every thread checks its tid, its stack and a thread-local word;
// and DIR/result gets "PASS ..." or "FAIL ...". No fd stays open while the tree waits.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char* dir;

static uint64_t pattern(uint64_t i) {  // splitmix64
  uint64_t z = i * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return z | 1;  // never a zero word
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

// Writes DIR/NAME atomically (by rename): the runner may be reading it.
static void put(const char* name, const char* text) {
  char path[4096], tmp[4200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) exit(2);
  size_t n = strlen(text);
  int ok = write(fd, text, n) == (ssize_t)n;
  if (close(fd) != 0 || !ok || rename(tmp, path) != 0) exit(2);
}

// The shape is made: DIR/pids, DIR/create_ns, and last DIR/ready (what the runner waits for).
static void announce(const char* pids, uint64_t made_ns) {
  char text[64];
  put("pids", pids);
  snprintf(text, sizeof text, "%" PRIu64 "\n", made_ns);
  put("create_ns", text);
  snprintf(text, sizeof text, "%d\n", getpid());
  put("ready", text);
}

static void wait_go(void) {
  char path[4096];
  snprintf(path, sizeof path, "%s/go", dir);
  const struct timespec tick = {0, 20 * 1000 * 1000};
  struct stat st;
  while (stat(path, &st) != 0) nanosleep(&tick, NULL);  // EINTR: just poll again
}

static void fill(uint64_t* area, size_t words, uint64_t seed) {
  for (size_t i = 0; i < words; i++) area[i] = pattern(seed + i);
}

// Index of the first word that differs, or -1.
static long check(const uint64_t* area, size_t words, uint64_t seed) {
  for (size_t i = 0; i < words; i++)
    if (area[i] != pattern(seed + i)) return (long)i;
  return -1;
}

// ---- procs: N processes of MIB MiB each ----

static int procs(long n, long mib, char* out, size_t outlen) {
  size_t words = (size_t)mib << 17;
  uint64_t t0 = now_ns();
  int ready[2];  // each child writes one byte once its memory is written
  if (pipe(ready) < 0) return -1;
  pid_t* kids = calloc((size_t)n, sizeof(pid_t));
  if (!kids) return -1;
  long index = 0;
  for (long i = 1; i < n; i++) {
    pid_t k = fork();
    if (k < 0) return -1;
    if (k == 0) {
      index = i;
      break;
    }
    kids[i] = k;
  }
  uint64_t seed = (uint64_t)index << 40;
  uint64_t* area =
      mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (area == MAP_FAILED) return -1;
  fill(area, words, seed);
  if (index != 0) {
    close(ready[0]);
    if (write(ready[1], "r", 1) != 1) _exit(2);
    close(ready[1]);
    wait_go();
    _exit(check(area, words, seed) < 0 ? 0 : 1);
  }
  close(ready[1]);
  char c;
  for (long i = 1; i < n; i++)
    if (read(ready[0], &c, 1) != 1) return -1;
  close(ready[0]);
  uint64_t made = now_ns() - t0;

  char *pids = malloc((size_t)n * 16 + 1), *p = pids;
  p += sprintf(p, "%d\n", getpid());
  for (long i = 1; i < n; i++) p += sprintf(p, "%d\n", kids[i]);
  announce(pids, made);

  wait_go();
  long bad_tasks = 0, first_bad = -1;
  long w = check(area, words, seed);
  if (w >= 0) bad_tasks++, first_bad = 0;
  for (long i = 1; i < n; i++) {
    int st;
    if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      if (bad_tasks++ == 0) first_bad = i;
    }
  }
  if (bad_tasks == 0)
    snprintf(out, outlen, "PASS %ld processes of %ld MiB\n", n, mib);
  else
    snprintf(out, outlen, "FAIL %ld of %ld processes lost memory or state (first: #%ld)\n",
             bad_tasks, n, first_bad);
  return bad_tasks == 0 ? 0 : 1;
}

// ---- vmas: N one-page VMAs, read-write and read-only in turn ----

static int vma_prot(long i) {
  return i % 2 ? PROT_READ : PROT_READ | PROT_WRITE;
}

static int vmas(long n, char* out, size_t outlen) {
  const size_t page = 4096;
  uint64_t t0 = now_ns();
  char* base =
      mmap(NULL, (size_t)n * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return -1;
  for (long i = 0; i < n; i++) fill((uint64_t*)(base + i * page), page / 8, (uint64_t)i << 20);
  // Neighbours with different protections never merge: N VMAs.
  for (long i = 1; i < n; i += 2)
    if (mprotect(base + i * page, page, vma_prot(i)) < 0) return -1;
  uint64_t made = now_ns() - t0;
  char pid[16];
  snprintf(pid, sizeof pid, "%d\n", getpid());
  announce(pid, made);

  wait_go();
  long bad = 0, first_bad = -1;
  for (long i = 0; i < n; i++)
    if (check((uint64_t*)(base + i * page), page / 8, (uint64_t)i << 20) >= 0 && bad++ == 0)
      first_bad = i;
  // Every page is a VMA of its own, with its protection.
  long seen = 0, wrong = 0;
  FILE* maps = fopen("/proc/self/maps", "re");
  if (!maps) return -1;
  char line[512];
  uintptr_t lo = (uintptr_t)base, hi = lo + (size_t)n * page;
  while (fgets(line, sizeof line, maps)) {
    uintptr_t s, e;
    char perms[8];
    if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s", &s, &e, perms) != 3) continue;
    if (e <= lo || s >= hi) continue;
    long i = (long)((s - lo) / page);
    int want = vma_prot(i);
    if (s < lo || e > hi || e - s != page || (perms[0] == 'r') != !!(want & PROT_READ) ||
        (perms[1] == 'w') != !!(want & PROT_WRITE) || perms[3] != 'p')
      wrong++;
    seen++;
  }
  fclose(maps);
  if (bad == 0 && wrong == 0 && seen == n)
    snprintf(out, outlen, "PASS %ld VMAs\n", n);
  else
    snprintf(out, outlen,
             "FAIL %ld of %ld pages differ (first: #%ld); %ld VMAs in the area (%ld wrong)\n", bad,
             n, first_bad, seen, wrong);
  return bad == 0 && wrong == 0 && seen == n ? 0 : 1;
}

// ---- threads: N threads waiting on a futex ----

static _Atomic uint32_t go_word;  // 0 until DIR/go exists
static _Atomic long started, ok_threads, checked;
static __thread uint64_t tls_word;

struct slot {
  long index;
  pid_t tid;
};

static void* thread_main(void* arg) {
  struct slot* s = arg;
  s->tid = (pid_t)syscall(SYS_gettid);
  tls_word = pattern((uint64_t)s->index);
  volatile uint64_t on_stack[64];
  for (int i = 0; i < 64; i++) on_stack[i] = pattern(((uint64_t)s->index << 8) + i);
  atomic_fetch_add(&started, 1);
  while (atomic_load(&go_word) == 0) syscall(SYS_futex, &go_word, FUTEX_WAIT_PRIVATE, 0, NULL);
  int good = s->tid == (pid_t)syscall(SYS_gettid) && tls_word == pattern((uint64_t)s->index);
  for (int i = 0; i < 64; i++) good &= on_stack[i] == pattern(((uint64_t)s->index << 8) + i);
  if (good) atomic_fetch_add(&ok_threads, 1);
  atomic_fetch_add(&checked, 1);
  return NULL;
}

static int threads(long n, char* out, size_t outlen) {
  uint64_t t0 = now_ns();
  struct slot* slots = calloc((size_t)n, sizeof *slots);
  pthread_t* ids = calloc((size_t)n, sizeof *ids);
  if (!slots || !ids) return -1;
  tls_word = pattern(0);
  slots[0].tid = (pid_t)syscall(SYS_gettid);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 << 10);
  for (long i = 1; i < n; i++) {
    slots[i].index = i;
    if (pthread_create(&ids[i], &attr, thread_main, &slots[i]) != 0) return -1;
  }
  const struct timespec tick = {0, 1000 * 1000};
  while (atomic_load(&started) < n - 1) nanosleep(&tick, NULL);
  uint64_t made = now_ns() - t0;
  char pid[16];
  snprintf(pid, sizeof pid, "%d\n", getpid());
  announce(pid, made);

  wait_go();
  int main_ok = tls_word == pattern(0) && slots[0].tid == (pid_t)syscall(SYS_gettid);
  atomic_store(&go_word, 1);
  syscall(SYS_futex, &go_word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
  for (long i = 1; i < n; i++) pthread_join(ids[i], NULL);
  long ok = atomic_load(&ok_threads) + main_ok;
  if (ok == n && atomic_load(&checked) == n - 1)
    snprintf(out, outlen, "PASS %ld threads\n", n);
  else
    snprintf(out, outlen, "FAIL %ld of %ld threads lost their state\n", n - ok, n);
  return ok == n ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc < 4) {
  usage:
    fprintf(stderr, "usage: treehog procs N MIB DIR | vmas N DIR | threads N DIR\n");
    return 2;
  }
  // Only what the tree makes itself (and stdio): whatever the caller leaks is closed.
  for (int fd = 3; fd < 1024; fd++) close(fd);
  const char* mode = argv[1];
  long n = atol(argv[2]);
  if (n < 1) goto usage;
  char result[256];
  int rc;
  if (!strcmp(mode, "procs") && argc == 5) {
    long mib = atol(argv[3]);
    if (mib < 1) goto usage;
    dir = argv[4];
    rc = procs(n, mib, result, sizeof result);
  } else if (!strcmp(mode, "vmas") && argc == 4) {
    dir = argv[3];
    rc = vmas(n, result, sizeof result);
  } else if (!strcmp(mode, "threads") && argc == 4) {
    dir = argv[3];
    rc = threads(n, result, sizeof result);
  } else {
    goto usage;
  }
  if (rc < 0) {
    fprintf(stderr, "treehog %s: %s\n", mode, strerror(errno));
    return 2;
  }
  put("result", result);
  return rc;
}
