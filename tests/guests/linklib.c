// A library module (a WASI reactor): its exports are imported by linkmain.wasm.
#include <stdio.h>
#include <string.h>

static int initialized;
static char greeting[64];

// Runs once via _initialize, before anything imports from us.
__attribute__((constructor)) static void init(void) {
  initialized = 1;
  strcpy(greeting, "library ready");
}

__attribute__((export_name("answer"))) int answer(void) { return initialized ? 42 : -1; }

__attribute__((export_name("add"))) int add(int a, int b) { return a + b; }

// Prints from the library's own memory through the job's shared WASI instance.
__attribute__((export_name("say_ready"))) void say_ready(void) {
  printf("%s\n", greeting);
  fflush(stdout);
}
