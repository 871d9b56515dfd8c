// Benchmark guest: sieve of Eratosthenes up to argv[1] (default 50000000), one byte per
// number, so 50M uses ~50 MB of (linear) memory. Prints the prime count and the largest prime.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  long limit = argc > 1 ? atol(argv[1]) : 50000000;
  if (limit < 2) limit = 2;
  unsigned char* composite = malloc((size_t)limit + 1);
  if (!composite) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  memset(composite, 0, (size_t)limit + 1);
  for (long i = 2; i * i <= limit; ++i)
    if (!composite[i])
      for (long j = i * i; j <= limit; j += i) composite[j] = 1;
  long count = 0, last = 0;
  for (long i = 2; i <= limit; ++i)
    if (!composite[i]) ++count, last = i;
  printf("primes up to %ld: %ld, largest %ld\n", limit, count, last);
  free(composite);
  return 0;
}
