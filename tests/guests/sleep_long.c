// Blocks in a host call (poll_oneoff) for 30 seconds.
#include <unistd.h>

int main(void) {
  sleep(30);
  return 0;
}
