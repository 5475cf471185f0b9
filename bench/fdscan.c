// fdscan PID...: the least any dumper does per fd, timed: read each fd's link, stat the file
// and read its fdinfo through /proc. Prints the seconds it took (wall clock), the fds seen and
// the CPU seconds it used. fds.sh uses it as the limit a dump of N fds is measured against.
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  struct timespec a, b, ca, cb;
  clock_gettime(CLOCK_MONOTONIC, &a);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ca);
  long seen = 0;
  for (int i = 1; i < argc; i++) {
    char path[512], link[4096], info[8192];
    snprintf(path, sizeof path, "/proc/%s/fd", argv[i]);
    DIR* d = opendir(path);
    if (!d) {
      perror(path);
      return 1;
    }
    struct dirent* e;
    while ((e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      snprintf(path, sizeof path, "/proc/%s/fd/%s", argv[i], e->d_name);
      struct stat st;
      if (readlink(path, link, sizeof link) < 0 || stat(path, &st) < 0) continue;
      snprintf(path, sizeof path, "/proc/%s/fdinfo/%s", argv[i], e->d_name);
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      if (read(fd, info, sizeof info) > 0) seen++;
      close(fd);
    }
    closedir(d);
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cb);
  printf("%.6f %ld %.6f\n", (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9, seen,
         (double)(cb.tv_sec - ca.tv_sec) + (cb.tv_nsec - ca.tv_nsec) / 1e9);
  return 0;
}
