// dumpscan: the least work any dumper of a process tree does, as the limit the shape
// benchmark (shapes.sh) compares `cryo dump` with.
//
//   dumpscan DIR PID...
//
// For the given processes: seize and interrupt every thread with ptrace and read its
// registers; read each process's /proc/PID/smaps; read the pagemap of its private mappings and
// copy their present pages with process_vm_readv (8 MiB batches, one buffer warmed before the
// clock starts) into a page file in DIR, written into the page cache, not synced; create the
// other files of CRIU's image set with a few bytes each (core-TID.img for every thread, ids,
// mm, pagemap and fs of every process: on some file systems creating a file costs more than
// filling it); detach every thread. DIR must be empty: the files stay (deleting them would
// make the next files created nearby cost more on ext4 without a journal, which skips inodes
// deleted in the last 30 s); the page files are emptied once the clock stops. Prints the
// seconds this took, then "tasks threads vmas pages".
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUF (8u << 20)
#define PAGE 4096u

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char* what, long id) {
  fprintf(stderr, "dumpscan: %s %ld: %s\n", what, id, strerror(errno));
  exit(1);
}

static pid_t* tids;
static size_t ntids, captids;

static void seize_all(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", pid);
  DIR* d = opendir(path);
  if (!d) die("cannot list the threads of", pid);
  struct dirent* e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    pid_t tid = atoi(e->d_name);
    if (ntids == captids) {
      captids = captids ? captids * 2 : 256;
      tids = realloc(tids, captids * sizeof *tids);
    }
    if (ptrace(PTRACE_SEIZE, tid, 0, 0) < 0) die("cannot seize", tid);
    tids[ntids++] = tid;
    if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0) die("cannot interrupt", tid);
    int st;
    if (waitpid(tid, &st, __WALL) != tid) die("cannot wait for", tid);
    struct user_regs_struct regs;
    if (ptrace(PTRACE_GETREGS, tid, 0, &regs) < 0) die("cannot read the registers of", tid);
  }
  closedir(d);
}

static char* slurp(const char* path, size_t* len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  size_t cap = 1 << 16, n = 0;
  char* s = malloc(cap + 1);
  for (;;) {
    if (n == cap) s = realloc(s, (cap *= 2) + 1);
    ssize_t r = read(fd, s + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(fd);
  s[n] = 0;
  *len = n;
  return s;
}

static long vmas, pages;

static void small_file(const char* dir, const char* kind, pid_t id) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s-%d.img", dir, kind, id);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 || write(fd, path, 64) != 64 || close(fd) != 0) die("cannot write a file for", id);
}

static void dump_memory(pid_t pid, const char* dir, char* buf) {
  char path[4096];
  size_t len;
  snprintf(path, sizeof path, "/proc/%d/smaps", pid);
  char* smaps = slurp(path, &len);
  if (!smaps) die("cannot read the smaps of", pid);
  snprintf(path, sizeof path, "/proc/%d/pagemap", pid);
  int pm = open(path, O_RDONLY | O_CLOEXEC);
  if (pm < 0) die("cannot open the pagemap of", pid);
  snprintf(path, sizeof path, "%s/pages-%d.img", dir, pid);
  int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out < 0) die("cannot create the page file of", pid);
  static uint64_t pme[BUF / PAGE];
  struct iovec remote[1024];
  size_t nremote = 0, used = 0;
  for (char* line = smaps; line && *line;) {
    char* next = strchr(line, '\n');
    if (next) *next++ = 0;
    uint64_t s, e;
    char perms[8];
    int path_at = 0;
    if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %*s %*s %*s %n", &s, &e, perms, &path_at) >= 3) {
      vmas++;
      const char* name = line + path_at;
      int anon = !*name || !strcmp(name, "[heap]") || !strcmp(name, "[stack]");
      for (uint64_t a = s; anon && perms[0] == 'r' && perms[3] == 'p' && a < e;) {
        size_t n = (e - a) / PAGE;
        if (n > BUF / PAGE) n = BUF / PAGE;
        if (pread(pm, pme, n * 8, (off_t)(a / PAGE * 8)) != (ssize_t)(n * 8))
          die("cannot read the pagemap of", pid);
        for (size_t i = 0; i < n; i++) {
          if (!(pme[i] >> 63)) continue;
          if (used + PAGE > BUF || nremote == 1024) {
            struct iovec local = {buf, used};
            if (process_vm_readv(pid, &local, 1, remote, nremote, 0) != (ssize_t)used)
              die("cannot read the memory of", pid);
            if (write(out, buf, used) != (ssize_t)used) die("cannot write the pages of", pid);
            used = nremote = 0;
          }
          uint64_t at = a + i * PAGE;
          if (nremote && (uint64_t)remote[nremote - 1].iov_base + remote[nremote - 1].iov_len == at)
            remote[nremote - 1].iov_len += PAGE;
          else
            remote[nremote++] = (struct iovec){(void*)at, PAGE};
          used += PAGE;
          pages++;
        }
        a += n * PAGE;
      }
    }
    line = next;
  }
  if (used) {
    struct iovec local = {buf, used};
    if (process_vm_readv(pid, &local, 1, remote, nremote, 0) != (ssize_t)used)
      die("cannot read the memory of", pid);
    if (write(out, buf, used) != (ssize_t)used) die("cannot write the pages of", pid);
  }
  close(out);
  close(pm);
  free(smaps);
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s DIR PID...\n", argv[0]);
    return 2;
  }
  const char* dir = argv[1];
  char* buf = malloc(BUF);
  memset(buf, 1, BUF);  // warm: the limit pays no first-touch faults for its buffer
  double t = now();
  for (int i = 2; i < argc; i++) seize_all(atoi(argv[i]));
  for (int i = 2; i < argc; i++) dump_memory(atoi(argv[i]), dir, buf);
  for (size_t i = 0; i < ntids; i++) small_file(dir, "core", tids[i]);
  for (int i = 2; i < argc; i++)
    for (const char* const* k = (const char* const[]){"ids", "mm", "pagemap", "fs", NULL}; *k; k++)
      small_file(dir, *k, atoi(argv[i]));
  for (size_t i = 0; i < ntids; i++)
    if (ptrace(PTRACE_DETACH, tids[i], 0, 0) < 0) die("cannot detach from", tids[i]);
  double d = now() - t;
  // The page files' memory back to the free lists, for the dump measured next: in a VM the
  // first touch of memory the guest has not used lately costs a fault in the host, and the
  // limit and cryo must meet the same free pages. Truncated, not deleted (see above).
  for (int i = 2; i < argc; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/pages-%s.img", dir, argv[i]);
    if (truncate(path, 0) < 0) die("cannot truncate the page file of", atol(argv[i]));
  }
  printf("%.6f %d %zu %ld %ld\n", d, argc - 2, ntids, vmas, pages);
  return 0;
}
