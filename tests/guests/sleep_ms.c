// Sleeps argv[1] milliseconds, then prints "done <argv[2]>": a job bound by wall time whose
// output names it (queue tests and the queue benchmark).
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char** argv) {
  long ms = argc > 1 ? atol(argv[1]) : 0;
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
  printf("done %s\n", argc > 2 ? argv[2] : "");
  return 0;
}
