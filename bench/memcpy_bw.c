// memcpy_bw: the physical limits the dump/restore figures are compared with.
//
//   memcpy_bw DIR [MIB]          (MIB defaults to 1024)
//
// Prints, one "key=value" line each (MiB/s, integers), then a human summary on stderr:
//   first_touch_MiBps   writing a fresh MIB area page by page (one page fault per 4 KiB page)
//   populate_MiBps      MADV_POPULATE_WRITE of a fresh MIB area (faults taken in bulk)
//                       (these two: best of 2 alternating rounds)
//   memcpy_MiBps        memcpy of MIB between two areas already touched, best of 5 runs
//   disk_buffered_MiBps write() of MIB into a file in DIR (8 MiB per call), up to the last write
//   disk_MiBps          the same up to the end of fsync(): the disk write rate of DIR's fs
// The file is deleted afterwards.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *map(size_t len) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("memcpy_bw: mmap");
    exit(1);
  }
  return p;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s DIR [MIB]\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  unsigned long mib = argc == 3 ? strtoul(argv[2], NULL, 10) : 1024;
  if (mib == 0) return 2;
  size_t len = (size_t)mib << 20;
  long page = sysconf(_SC_PAGESIZE);

  // Fault costs, on fresh areas unmapped again at once so that both see the same free-page
  // pool; two alternating rounds, best of each (in a VM the first guest touch of a physical
  // page also costs a host fault, which makes single figures noisy).
  double first_touch = 1e30, populate = 1e30, touch0 = 0, populate0 = 0;
  for (int round = 0; round < 2; round++) {
    char *a = map(len);
    double t = now();
    for (size_t off = 0; off < len; off += page) a[off] = (char)(off >> 12 | 1);
    double d = now() - t;
    if (d < first_touch) first_touch = d;
    if (round == 0) touch0 = d;
    munmap(a, len);
    a = map(len);
    t = now();
    if (madvise(a, len, MADV_POPULATE_WRITE) != 0) {
      perror("memcpy_bw: MADV_POPULATE_WRITE");
      exit(1);
    }
    d = now() - t;
    if (d < populate) populate = d;
    if (round == 0) populate0 = d;
    munmap(a, len);
  }

  // memcpy between two areas already touched.
  char *src = map(len), *dst = map(len);
  for (size_t off = 0; off < len; off += 64) src[off] = (char)(off * 2654435761u >> 7 | 1);
  memset(dst, 0x5a, len);
  double t;
  double best = 1e30;
  for (int run = 0; run < 5; run++) {
    t = now();
    memcpy(dst, src, len);
    double d = now() - t;
    if (d < best) best = d;
  }
  if (memcmp(dst, src, 4096) != 0) return 1;  // keep the copies observable
  munmap(dst, len);

  // Disk: write the (non-zero, non-trivial) source area into DIR, fsync, delete.
  char path[4096];
  snprintf(path, sizeof path, "%s/.memcpy_bw.%d", dir, (int)getpid());
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    fprintf(stderr, "memcpy_bw: %s: %s\n", path, strerror(errno));
    return 1;
  }
  const size_t chunk = 8 << 20;
  t = now();
  for (size_t off = 0; off < len;) {
    size_t n = len - off < chunk ? len - off : chunk;
    ssize_t w = write(fd, src + off, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "memcpy_bw: write %s: %s\n", path, strerror(errno));
      unlink(path);
      return 1;
    }
    off += (size_t)w;
  }
  double buffered = now() - t;
  if (fsync(fd) != 0) {
    perror("memcpy_bw: fsync");
    unlink(path);
    return 1;
  }
  double durable = now() - t;
  close(fd);
  unlink(path);
  munmap(src, len);

  printf("first_touch_MiBps=%.0f\n", mib / first_touch);
  printf("populate_MiBps=%.0f\n", mib / populate);
  printf("memcpy_MiBps=%.0f\n", mib / best);
  printf("disk_buffered_MiBps=%.0f\n", mib / buffered);
  printf("disk_MiBps=%.0f\n", mib / durable);
  fprintf(stderr,
          "memcpy_bw: %lu MiB: first touch %.3f s (%.1f us/page; first round %.3f s), "
          "MADV_POPULATE_WRITE %.3f s (first round %.3f s), memcpy best of 5 %.3f s; "
          "write() %.3f s, +fsync %.3f s (%s)\n",
          mib, first_touch, first_touch * 1e6 / (len / page), touch0, populate, populate0, best,
          buffered, durable, dir);
  return 0;
}
