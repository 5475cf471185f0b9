// tcpcopy: the loopback TCP rate this machine offers, the bound of a page server on it.
//
//   tcpcopy MIB [FILE]
//
// A child connects to the parent over 127.0.0.1 and sends MIB MiB from an already touched
// 1 MiB buffer (send() of 1 MiB at a time); the parent receives into a 1 MiB buffer and
// drops the data, or writes it to FILE (created, then removed) when given. Prints the
// seconds from accept() to the end of the data and the rate in MB/s (10^6 bytes/s).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUF (1 << 20)

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: tcpcopy MIB [FILE]\n");
    return 2;
  }
  long long total = atoll(argv[1]) << 20;
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  if (ls < 0 || bind(ls, (struct sockaddr*)&a, sizeof(a)) || listen(ls, 1) ||
      getsockname(ls, (struct sockaddr*)&a, &len)) {
    perror("tcpcopy: listen");
    return 1;
  }
  char* buf = malloc(BUF);
  memset(buf, 0x5a, BUF);
  pid_t child = fork();
  if (child == 0) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr*)&a, sizeof(a))) _exit(1);
    for (long long left = total; left > 0;) {
      ssize_t n = send(s, buf, left < BUF ? left : BUF, 0);
      if (n <= 0) _exit(1);
      left -= n;
    }
    close(s);
    _exit(0);
  }
  int c = accept(ls, NULL, NULL);
  int out = argc > 2 ? open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;
  double t0 = now();
  long long got = 0;
  for (;;) {
    ssize_t n = recv(c, buf, BUF, 0);
    if (n <= 0) break;
    if (out >= 0 && write(out, buf, n) != n) {
      perror("tcpcopy: write");
      return 1;
    }
    got += n;
  }
  double dt = now() - t0;
  int st;
  waitpid(child, &st, 0);
  if (out >= 0) unlink(argv[2]);
  if (got != total || !WIFEXITED(st) || WEXITSTATUS(st)) {
    fprintf(stderr, "tcpcopy: received %lld of %lld bytes\n", got, total);
    return 1;
  }
  printf("%.3f %.0f\n", dt, got / dt / 1e6);
  return 0;
}
