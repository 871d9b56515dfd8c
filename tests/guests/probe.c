// Escape probe guest: makes one raw syscall through the test-only wasmjail_probe import
// (only the wasmjail_probe binary provides it), as a guest with native code execution could.
//   probe NR [A0..A5]   syscall(NR, ...); prints "result=R" (R: the result or -errno)
//   probe garbage N     writes N bytes of garbage to the record pipe
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((import_module("wasmjail_probe"), import_name("syscall"))) long long
probe_syscall(long long nr, long long a0, long long a1, long long a2, long long a3, long long a4, long long a5);
__attribute__((import_module("wasmjail_probe"), import_name("garbage"))) long long probe_garbage(long long n);

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: probe NR [A0..A5] | probe garbage N\n");
    return 2;
  }
  if (strcmp(argv[1], "garbage") == 0) {
    long long n = probe_garbage(argc > 2 ? strtoll(argv[2], 0, 0) : 64);
    printf("wrote=%lld\n", n);
    return 0;
  }
  long long a[6] = {0, 0, 0, 0, 0, 0};
  for (int i = 2; i < argc && i < 8; ++i) a[i - 2] = strtoll(argv[i], 0, 0);
  long long r = probe_syscall(strtoll(argv[1], 0, 0), a[0], a[1], a[2], a[3], a[4], a[5]);
  printf("result=%lld\n", r);
  return 0;
}
