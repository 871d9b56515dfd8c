// Benchmark guest: file I/O through a preopened folder. Reads argv[1] (32 MiB input),
// transforms every byte (ROT13 on letters, lower->upper), writes argv[2] in 64 KiB
// chunks, and prints the byte count and an FNV-1a hash of the output.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: transform IN OUT\n");
    return 2;
  }
  FILE* in = fopen(argv[1], "rb");
  if (!in) { perror(argv[1]); return 1; }
  FILE* out = fopen(argv[2], "wb");
  if (!out) { perror(argv[2]); return 1; }
  static unsigned char buf[1 << 16];
  uint64_t total = 0, h = 1469598103934665603ull;
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
    for (size_t i = 0; i < n; ++i) {
      unsigned char c = buf[i];
      if (c >= 'a' && c <= 'z') c = (unsigned char)('A' + (c - 'a' + 13) % 26);
      else if (c >= 'A' && c <= 'Z') c = (unsigned char)('a' + (c - 'A' + 13) % 26);
      buf[i] = c;
      h = (h ^ c) * 1099511628211ull;
    }
    if (fwrite(buf, 1, n, out) != n) { perror("write"); return 1; }
    total += n;
  }
  if (fclose(out) != 0) { perror("close"); return 1; }
  fclose(in);
  printf("transformed %llu bytes, fnv1a %016llx\n", (unsigned long long)total, (unsigned long long)h);
  return 0;
}
