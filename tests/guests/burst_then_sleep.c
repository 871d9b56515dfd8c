// Writes 2 MiB to stdout at once, then blocks for 30 seconds (a live log stream that has
// plenty to send and then goes quiet).
#include <string.h>
#include <unistd.h>

int main(void) {
  static char buf[65536];
  memset(buf, 'y', sizeof buf);
  for (int i = 0; i < 32; ++i)
    if (write(1, buf, sizeof buf) != (long)sizeof buf) return 1;
  sleep(30);
  return 0;
}
