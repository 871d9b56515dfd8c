// A hot loop in main itself (V8 10.2 cannot tier up a running function): argv[1] rounds of
// an integer hash, then the result; a negative count never ends (until a limit stops it).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  long rounds = argc > 1 ? atol(argv[1]) : 100000000;
  uint64_t h = 1469598103934665603ull;
  for (long i = 0; rounds < 0 || i < rounds; ++i) {
    h ^= (uint64_t)i;
    h *= 1099511628211ull;
    h ^= h >> 29;
  }
  printf("hash %016llx\n", (unsigned long long)h);
  return 0;
}
