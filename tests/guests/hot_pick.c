// Two hot functions, run as argv[1] picks ("a", "b" or "ab"), each argv[2] rounds: a job
// optimizes only what it ran, so the hot-code cache entry grows as jobs pick differently.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) uint64_t hot_a(long rounds) {
  uint64_t h = 1469598103934665603ull;
  for (long i = 0; i < rounds; ++i) {
    h ^= (uint64_t)i;
    h *= 1099511628211ull;
    h ^= h >> 29;
  }
  return h;
}

__attribute__((noinline)) uint64_t hot_b(long rounds) {
  uint64_t h = 88172645463325252ull;
  for (long i = 0; i < rounds; ++i) {
    h ^= h << 13;
    h ^= h >> 7;
    h ^= h << 17;
    h += (uint64_t)i;
  }
  return h;
}

int main(int argc, char** argv) {
  const char* pick = argc > 1 ? argv[1] : "ab";
  long rounds = argc > 2 ? atol(argv[2]) : 100000000;
  uint64_t h = 0;
  if (strchr(pick, 'a')) h ^= hot_a(rounds);
  if (strchr(pick, 'b')) h ^= hot_b(rounds);
  printf("%s %016llx\n", pick, (unsigned long long)h);
  return 0;
}
