// Benchmark guest: the smallest job. Whole-process start-up cost dominates.
#include <stdio.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    printf("Hello from wasmjail!\n");
    return 0;
  }
  for (int i = 1; i < argc; ++i) printf("Hello, %s!\n", argv[i]);
  return 0;
}
