// bad_pointers: calls WASI functions with pointers and lengths outside linear memory and
// prints each errno (21 = FAULT expected everywhere); then proves the job still runs.
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(#name)))
typedef struct {
  uint32_t buf, len;
} iov_t;

IMPORT(fd_write) int32_t w_fd_write(int32_t fd, uint32_t iovs, int32_t n, uint32_t nwritten);
IMPORT(fd_read) int32_t w_fd_read(int32_t fd, uint32_t iovs, int32_t n, uint32_t nread);
IMPORT(args_get) int32_t w_args_get(uint32_t argv, uint32_t buf);
IMPORT(args_sizes_get) int32_t w_args_sizes_get(uint32_t count, uint32_t size);
IMPORT(environ_get) int32_t w_environ_get(uint32_t env, uint32_t buf);
IMPORT(random_get) int32_t w_random_get(uint32_t buf, uint32_t len);
IMPORT(clock_time_get) int32_t w_clock_time_get(int32_t id, int64_t prec, uint32_t out);
IMPORT(path_open)
int32_t w_path_open(int32_t fd, int32_t dirflags, uint32_t path, int32_t len, int32_t oflags,
                    int64_t base, int64_t inh, int32_t fdflags, uint32_t fd_out);
IMPORT(fd_readdir) int32_t w_fd_readdir(int32_t fd, uint32_t buf, int32_t len, int64_t cookie, uint32_t used);
IMPORT(fd_filestat_get) int32_t w_fd_filestat_get(int32_t fd, uint32_t out);
IMPORT(path_filestat_get)
int32_t w_path_filestat_get(int32_t fd, int32_t flags, uint32_t p, int32_t len, uint32_t out);
IMPORT(path_readlink)
int32_t w_path_readlink(int32_t fd, uint32_t p, int32_t len, uint32_t buf, int32_t buflen, uint32_t used);
IMPORT(poll_oneoff) int32_t w_poll_oneoff(uint32_t in, uint32_t out, int32_t n, uint32_t nevents);
IMPORT(fd_prestat_dir_name) int32_t w_fd_prestat_dir_name(int32_t fd, uint32_t buf, int32_t len);

static uint8_t scratch[256];
static iov_t iov;

int main(void) {
  // The current end of memory: everything at or past it is outside.
  uint32_t end = (uint32_t)__builtin_wasm_memory_size(0) * 65536u;
  uint32_t ok = (uint32_t)(uintptr_t)scratch;
  const uint32_t far = 0xfffffff0u;
  printf("fd_write iovs: %d\n", w_fd_write(1, far, 1, ok));
  iov.buf = end - 2;
  iov.len = 8;  // straddles the end
  printf("fd_write iov buffer: %d\n", w_fd_write(1, (uint32_t)(uintptr_t)&iov, 1, ok));
  iov.buf = ok;
  iov.len = 1;
  printf("fd_write nwritten: %d\n", w_fd_write(1, (uint32_t)(uintptr_t)&iov, 1, end));
  printf("fd_write iovs count: %d\n", w_fd_write(1, ok, 0x7fffffff, ok));
  printf("fd_read iovs: %d\n", w_fd_read(0, far, 1, ok));
  printf("args_get: %d\n", w_args_get(far, ok));
  printf("args_sizes_get: %d\n", w_args_sizes_get(ok, end - 3));
  printf("environ_get: %d\n", w_environ_get(ok, far));
  printf("random_get: %d\n", w_random_get(end - 16, 32));
  printf("clock_time_get: %d\n", w_clock_time_get(0, 0, end - 4));
  static const char name[] = "created.cleanup";
  printf("path_open path: %d\n", w_path_open(3, 0, far, 8, 1, 0, 0, 0, ok));
  printf("path_open fd_out: %d\n", w_path_open(3, 0, (uint32_t)(uintptr_t)name, sizeof name - 1, 1, 0, 0, 0, end));
  printf("fd_readdir buf: %d\n", w_fd_readdir(3, end - 100, 200, 0, ok));
  printf("fd_readdir used: %d\n", w_fd_readdir(3, ok, 100, 0, far));
  printf("fd_filestat_get: %d\n", w_fd_filestat_get(3, end - 32));
  printf("path_filestat_get: %d\n", w_path_filestat_get(3, 0, (uint32_t)(uintptr_t)".", 1, far));
  printf("path_readlink buf: %d\n", w_path_readlink(3, (uint32_t)(uintptr_t)"x", 1, end - 1, 10, ok));
  printf("poll_oneoff: %d\n", w_poll_oneoff(far, ok, 1, ok));
  printf("fd_prestat_dir_name: %d\n", w_fd_prestat_dir_name(3, far, 100));
  printf("still running\n");
  return 0;
}
