// An entry module that imports functions from the library module registered as "lib".
#include <stdio.h>

__attribute__((import_module("lib"), import_name("answer"))) int lib_answer(void);
__attribute__((import_module("lib"), import_name("add"))) int lib_add(int, int);
__attribute__((import_module("lib"), import_name("say_ready"))) void lib_say_ready(void);

int main(void) {
  lib_say_ready();
  printf("The library says %d (and 40 + 2 = %d)\n", lib_answer(), lib_add(40, 2));
  return lib_answer() == 42 ? 0 : 1;
}
