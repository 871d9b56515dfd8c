// Harness tool for scripts/bench (not a workload): spawn RESULT_FILE PROGRAM [ARGS...]
// runs PROGRAM (stdio inherited), waits for it, and writes one line to RESULT_FILE:
// "WALL_NS EXIT CPU_US MAXRSS_KB". Needed because a process forked or vforked from the
// Python harness inherits Python's RSS high-water mark in ru_maxrss; forked from this
// small program it starts near zero. Wall time is spawn to reap on CLOCK_MONOTONIC.
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

extern char** environ;

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: spawn RESULT_FILE PROGRAM [ARGS...]\n");
    return 2;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid;
  int e = posix_spawnp(&pid, argv[2], NULL, NULL, argv + 2, environ);
  if (e != 0) {
    fprintf(stderr, "spawn: cannot run %s\n", argv[2]);
    return 127;
  }
  int status;
  struct rusage ru;
  if (wait4(pid, &status, 0, &ru) < 0) return 127;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long long ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
  long long cpu = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  FILE* f = fopen(argv[1], "w");
  if (!f) return 127;
  fprintf(f, "%lld %d %lld %ld\n", ns, code, cpu, ru.ru_maxrss);
  fclose(f);
  return 0;
}
