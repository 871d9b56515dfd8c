// Allocates and writes argv[1] MiB (default 256) in 1 MiB steps, so every page is resident,
// then prints the total: memory that only a resident-memory limit (the cgroup's) sees.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  int mib = argc > 1 ? atoi(argv[1]) : 256;
  static char* blocks[4096];
  if (mib > 4096) mib = 4096;
  unsigned sum = 0;
  for (int i = 0; i < mib; ++i) {
    char* p = malloc(1 << 20);
    if (!p) {
      printf("malloc refused after %d MiB\n", i);
      return 3;
    }
    memset(p, i + 1, 1 << 20);
    blocks[i] = p;
  }
  for (int i = 0; i < mib; ++i) sum += (unsigned char)blocks[i][i];  // keeps the writes observable
  printf("touched %d MiB (%u)\n", mib, sum);
  return 0;
}
