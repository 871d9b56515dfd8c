// iovecs: writes argv[1] single-byte iovecs in one fd_write call (more than IOV_MAX is
// allowed: a short write is a valid answer), then the rest until all are out, and reads a
// preopened file ("data.txt", if argv[2] is given) through as many single-byte iovecs.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
  void* buf;
  uint32_t len;
} iov_t;

__attribute__((import_module("wasi_snapshot_preview1"), import_name("fd_write")))
int32_t w_fd_write(int32_t fd, const iov_t* iovs, int32_t n, uint32_t* nwritten);
__attribute__((import_module("wasi_snapshot_preview1"), import_name("fd_read")))
int32_t w_fd_read(int32_t fd, const iov_t* iovs, int32_t n, uint32_t* nread);
__attribute__((import_module("wasi_snapshot_preview1"), import_name("path_open")))
int32_t w_path_open(int32_t fd, int32_t dirflags, const char* path, int32_t len, int32_t oflags,
                    int64_t base, int64_t inh, int32_t fdflags, uint32_t* fd_out);

int main(int argc, char** argv) {
  int n = atoi(argv[1]);
  char* bytes = malloc((size_t)n);
  iov_t* iov = malloc(sizeof(iov_t) * (size_t)n);
  for (int i = 0; i < n; ++i) {
    bytes[i] = (char)('a' + i % 26);
    iov[i].buf = bytes + i;
    iov[i].len = 1;
  }
  int done = 0, calls = 0;
  while (done < n) {
    uint32_t w = 0;
    int32_t e = w_fd_write(1, iov + done, n - done, &w);
    ++calls;
    if (e || w == 0) {
      fprintf(stderr, "fd_write errno %d after %d bytes\n", (int)e, done);
      return 1;
    }
    done += (int)w;
  }
  fprintf(stderr, "wrote %d bytes\n", done);
  if (argc > 2) {
    uint32_t fd;
    int32_t e = w_path_open(3, 1, "data.txt", 8, 0, 1 << 1, 0, 0, &fd);
    if (e) {
      fprintf(stderr, "path_open errno %d\n", (int)e);
      return 1;
    }
    for (int i = 0; i < n; ++i) bytes[i] = 0;
    int got = 0;
    for (;;) {
      uint32_t r = 0;
      e = w_fd_read((int32_t)fd, iov + got, n - got, &r);
      if (e || r == 0) break;
      got += (int)r;
    }
    fprintf(stderr, "read %d bytes: %.*s\n", got, got, bytes);
  }
  return 0;
}
