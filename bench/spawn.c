// Harness tool for scripts/bench (not a workload): spawn [--tail] RESULT_FILE PROGRAM [ARGS...]
// runs PROGRAM (stdio inherited), waits for it, and writes one line to RESULT_FILE:
// "WALL_NS EXIT CPU_US MAXRSS_KB". Needed because a process forked or vforked from the
// Python harness inherits Python's RSS high-water mark in ru_maxrss; forked from this
// small program it starts near zero. Wall time is spawn to reap on CLOCK_MONOTONIC.
// --tail: this process becomes a child subreaper, so that what PROGRAM left running after it
// exited (a detached background process) is reparented here; once PROGRAM is reaped the line
// is written with three more fields for those: "TAIL_NS TAIL_CPU_US TAIL_MAXRSS_KB" (how long
// after PROGRAM's exit the last of them ended, their CPU time, the largest peak RSS among them
// and their own children; 0 0 0 when there were none).
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

extern char** environ;

static long long ns_between(struct timespec a, struct timespec b) {
  return (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
}

static long long cpu_us(const struct rusage* ru) {
  return (ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000000LL + ru->ru_utime.tv_usec + ru->ru_stime.tv_usec;
}

int main(int argc, char** argv) {
  int tail = argc > 1 && strcmp(argv[1], "--tail") == 0;
  if (tail) {
    argv++;
    argc--;
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) return 127;
  }
  if (argc < 3) {
    fprintf(stderr, "usage: spawn [--tail] RESULT_FILE PROGRAM [ARGS...]\n");
    return 2;
  }
  struct timespec t0, t1, t2;
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
  long long ns = ns_between(t0, t1);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  long long tail_ns = 0, tail_cpu = 0;
  long tail_rss = 0;
  if (tail) {
    struct rusage tru;
    int st;
    for (;;) {
      pid_t got = wait4(-1, &st, 0, &tru);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) break;  // ECHILD: all of them are gone
      clock_gettime(CLOCK_MONOTONIC, &t2);
      tail_ns = ns_between(t1, t2);
      tail_cpu += cpu_us(&tru);
      if (tru.ru_maxrss > tail_rss) tail_rss = tru.ru_maxrss;
    }
  }
  FILE* f = fopen(argv[1], "w");
  if (!f) return 127;
  if (tail)
    fprintf(f, "%lld %d %lld %ld %lld %lld %ld\n", ns, code, cpu_us(&ru), ru.ru_maxrss, tail_ns, tail_cpu, tail_rss);
  else
    fprintf(f, "%lld %d %lld %ld\n", ns, code, cpu_us(&ru), ru.ru_maxrss);
  fclose(f);
  return 0;
}
