// fdhog N DIR: a tree holding N open fds of mixed kinds, for the fd benchmark (fds.sh).
//
// Each process holds at most PER_TASK fds (RLIMIT_NOFILE is capped here), so N beyond that
// is spread over children. The kinds cycle through: a regular file (one of 8 shared names,
// so many open files share an inode), a pipe (both ends, 3 bytes queued), a socketpair (both
// ends, 4 bytes queued one way), an eventfd (counter = its fd number) and a dup of the
// previous fd. Once every process is ready, DIR/ready holds the root's pid and
// DIR/create_ns the time the fds took to make. After DIR/go appears, each process checks
// its fds (kinds, sharing of dups, queued bytes, counters) and DIR/result gets "PASS" or
// FAIL lines.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PER_TASK 15000

static const char* dir;

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void put(const char* name, const char* text) {
  char path[4096], tmp[4200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, getpid());
  FILE* f = fopen(tmp, "w");
  if (!f) exit(2);
  fputs(text, f);
  fclose(f);
  rename(tmp, path);
}

static int exists(const char* name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return access(path, F_OK) == 0;
}

// What fd `fd` must be: kind index in the cycle of 7 slots.
// slot 0: file, 1-2: pipe r/w, 3-4: socketpair, 5: eventfd, 6: dup of slot 5.
static int first = -1;  // the first fd made

static int make(int count) {
  int made = 0;
  char name[4096];
  while (made + 7 <= count) {
    snprintf(name, sizeof name, "%s/file%d", dir, made % 8);
    int f = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (first < 0) first = f;
    int p[2], s[2];
    if (f < 0 || pipe(p) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, s) < 0) return -1;
    if (write(p[1], "abc", 3) != 3 || write(s[0], "wxyz", 4) != 4) return -1;
    int e = eventfd(0, 0);
    if (e < 0) return -1;
    uint64_t v = (uint64_t)e;
    if (write(e, &v, sizeof v) != sizeof v) return -1;
    if (dup(e) < 0) return -1;
    made += 7;
  }
  return made;
}

static int check(int made, FILE* out) {
  int bad = 0;
  for (int fd = first; fd < first + made; fd += 7) {
    char buf[16];
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) bad++, fprintf(out, "FAIL fd %d not a file\n", fd);
    // Only the file was opened close-on-exec.
    if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC) || (fcntl(fd + 1, F_GETFD) & FD_CLOEXEC) ||
        (fcntl(fd + 6, F_GETFD) & FD_CLOEXEC))
      bad++, fprintf(out, "FAIL fds %d..%d: close-on-exec changed\n", fd, fd + 6);
    if (read(fd + 1, buf, sizeof buf) != 3 || memcmp(buf, "abc", 3))
      bad++, fprintf(out, "FAIL pipe %d lost its bytes\n", fd + 1);
    if (read(fd + 4, buf, sizeof buf) != 4 || memcmp(buf, "wxyz", 4))
      bad++, fprintf(out, "FAIL socket %d lost its bytes\n", fd + 4);
    uint64_t v = 0;
    if (read(fd + 5, &v, sizeof v) != sizeof v || v != (uint64_t)(fd + 5))
      bad++, fprintf(out, "FAIL eventfd %d counter %llu\n", fd + 5, (unsigned long long)v);
    // The dup shares the counter: it reads empty now.
    int fl = fcntl(fd + 6, F_GETFL);
    fcntl(fd + 6, F_SETFL, fl | O_NONBLOCK);
    if (read(fd + 6, &v, sizeof v) != -1 || errno != EAGAIN)
      bad++, fprintf(out, "FAIL fd %d is not a dup of %d\n", fd + 6, fd + 5);
    if (bad > 10) break;
  }
  return bad;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: fdhog N DIR\n");
    return 2;
  }
  long n = atol(argv[1]);
  dir = argv[2];
  // Only the fds made here (and stdio): whatever the caller leaks is closed.
  for (int fd = 3; fd < 1024; fd++) close(fd);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_max < PER_TASK + 64) {
    fprintf(stderr, "fdhog: RLIMIT_NOFILE hard limit %llu is below %d\n",
            (unsigned long long)rl.rlim_max, PER_TASK + 64);
    return 2;
  }
  int tasks = (int)((n + PER_TASK - 1) / PER_TASK);
  if (tasks < 1) tasks = 1;
  const uint64_t t0 = now_ns();
  int index = 0;  // 0: the root
  pid_t kids[64];
  for (int i = 1; i < tasks && i < 64; i++) {
    pid_t k = fork();
    if (k == 0) {
      index = i;
      break;
    }
    kids[i] = k;
  }
  long mine = n / tasks + (index < n % tasks ? 1 : 0);
  int made = make((int)mine);
  if (made < 0) {
    perror("fdhog: making fds");
    return 2;
  }
  char name[64], text[64];
  snprintf(name, sizeof name, "ready-%d", index);
  snprintf(text, sizeof text, "%d %d\n", getpid(), made);
  put(name, text);
  if (index == 0) {
    for (int i = 1; i < tasks; i++) {
      snprintf(name, sizeof name, "ready-%d", i);
      while (!exists(name)) usleep(2000);
    }
    snprintf(text, sizeof text, "%llu\n", (unsigned long long)(now_ns() - t0));
    put("create_ns", text);
    snprintf(text, sizeof text, "%d\n", getpid());
    put("ready", text);
  }
  while (!exists("go")) usleep(20000);
  char* text_buf = NULL;
  size_t text_len = 0;
  FILE* out = open_memstream(&text_buf, &text_len);
  if (!out) return 2;
  int bad = check(made, out);
  fprintf(out, bad ? "FAIL %d\n" : "PASS %d fds\n", bad ? bad : made);
  fclose(out);
  snprintf(name, sizeof name, "result-%d", index);
  put(name, text_buf);  // whole, by rename: the root may be reading
  if (index != 0) {
    pause();  // the root kills its tree at the end
    return 0;
  }
  int all_ok = !bad;
  for (int i = 1; i < tasks; i++) {
    snprintf(name, sizeof name, "result-%d", i);
    for (int w = 0; w < 3000 && !exists(name); w++) usleep(10000);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE* f = fopen(path, "r");
    char line[256] = "";
    if (!f || !fgets(line, sizeof line, f) || strncmp(line, "PASS", 4)) all_ok = 0;
    if (f) fclose(f);
  }
  put("result", all_ok ? "PASS\n" : "FAIL\n");
  (void)kids;
  kill(0, SIGKILL);
  return 0;
}
