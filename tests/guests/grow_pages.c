// Grows memory one page at a time until refused, then reports the final size.
#include <stdio.h>

int main(void) {
  unsigned long pages = __builtin_wasm_memory_size(0);
  while (__builtin_wasm_memory_grow(0, 1) != (unsigned long)-1) ++pages;
  printf("refused at %lu pages (%lu MiB)\n", pages, pages / 16);
  return 0;
}
