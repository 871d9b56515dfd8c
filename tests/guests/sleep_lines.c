// Writes a line, sleeps a second, writes another: output must stream, not arrive at the end.
#include <stdio.h>
#include <unistd.h>

int main(void) {
  printf("first\n");
  fflush(stdout);
  sleep(1);
  printf("second\n");
  return 0;
}
