// Benchmark guest: writes argv[1] MiB (default 50) to stdout in 4 KiB write() calls.
// The bytes are a counter pattern; the harness checks the count and the hash of what arrived.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char** argv) {
  long mib = argc > 1 ? atol(argv[1]) : 50;
  char buf[4096];
  long blocks = mib * 256;  // 4 KiB blocks
  for (long b = 0; b < blocks; ++b) {
    for (int i = 0; i < 4096; ++i) buf[i] = (char)('a' + (b + i) % 26);
    buf[4095] = '\n';
    size_t off = 0;
    while (off < sizeof buf) {
      ssize_t w = write(1, buf + off, sizeof buf - off);
      if (w <= 0) return 1;
      off += (size_t)w;
    }
  }
  return 0;
}
