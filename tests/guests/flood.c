// Writes argv[1] MiB (default 1024) to stdout in 64 KiB writes.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  static char buf[65536];
  memset(buf, 'x', sizeof buf);
  long mib = argc > 1 ? atol(argv[1]) : 1024;
  for (long i = 0; i < mib * 16; ++i)
    if (write(1, buf, sizeof buf) != (long)sizeof buf) return 1;
  return 0;
}
