// wasi_fuzz: calls the fd_* and path_* imports ITERATIONS times with pseudo-random
// descriptors, flags, pointers (in and out of memory) and paths built from "a", ".", "/"
// and NUL (so "..", absolute paths and escape attempts come up often), seeded by argv[1].
// Every call must return an errno; the job must reach "done".
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(#name)))
typedef uint32_t P;  // a guest pointer, possibly outside memory
IMPORT(fd_advise) int32_t f_advise(int32_t, int64_t, int64_t, int32_t);
IMPORT(fd_allocate) int32_t f_allocate(int32_t, int64_t, int64_t);
IMPORT(fd_close) int32_t f_close(int32_t);
IMPORT(fd_datasync) int32_t f_datasync(int32_t);
IMPORT(fd_fdstat_get) int32_t f_fdstat_get(int32_t, P);
IMPORT(fd_fdstat_set_flags) int32_t f_fdstat_set_flags(int32_t, int32_t);
IMPORT(fd_fdstat_set_rights) int32_t f_fdstat_set_rights(int32_t, int64_t, int64_t);
IMPORT(fd_filestat_get) int32_t f_filestat_get(int32_t, P);
IMPORT(fd_filestat_set_size) int32_t f_filestat_set_size(int32_t, int64_t);
IMPORT(fd_filestat_set_times) int32_t f_filestat_set_times(int32_t, int64_t, int64_t, int32_t);
IMPORT(fd_pread) int32_t f_pread(int32_t, P, int32_t, int64_t, P);
IMPORT(fd_pwrite) int32_t f_pwrite(int32_t, P, int32_t, int64_t, P);
IMPORT(fd_read) int32_t f_read(int32_t, P, int32_t, P);
IMPORT(fd_write) int32_t f_write(int32_t, P, int32_t, P);
IMPORT(fd_readdir) int32_t f_readdir(int32_t, P, int32_t, int64_t, P);
IMPORT(fd_renumber) int32_t f_renumber(int32_t, int32_t);
IMPORT(fd_seek) int32_t f_seek(int32_t, int64_t, int32_t, P);
IMPORT(fd_sync) int32_t f_sync(int32_t);
IMPORT(fd_tell) int32_t f_tell(int32_t, P);
IMPORT(fd_prestat_get) int32_t f_prestat_get(int32_t, P);
IMPORT(fd_prestat_dir_name) int32_t f_prestat_dir_name(int32_t, P, int32_t);
IMPORT(path_create_directory) int32_t p_mkdir(int32_t, P, int32_t);
IMPORT(path_filestat_get) int32_t p_stat(int32_t, int32_t, P, int32_t, P);
IMPORT(path_filestat_set_times) int32_t p_set_times(int32_t, int32_t, P, int32_t, int64_t, int64_t, int32_t);
IMPORT(path_link) int32_t p_link(int32_t, int32_t, P, int32_t, int32_t, P, int32_t);
IMPORT(path_open) int32_t p_open(int32_t, int32_t, P, int32_t, int32_t, int64_t, int64_t, int32_t, P);
IMPORT(path_readlink) int32_t p_readlink(int32_t, P, int32_t, P, int32_t, P);
IMPORT(path_remove_directory) int32_t p_rmdir(int32_t, P, int32_t);
IMPORT(path_rename) int32_t p_rename(int32_t, P, int32_t, int32_t, P, int32_t);
IMPORT(path_symlink) int32_t p_symlink(P, int32_t, int32_t, P, int32_t);
IMPORT(path_unlink_file) int32_t p_unlink(int32_t, P, int32_t);

static uint64_t state;
static uint64_t rnd(void) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}
static uint32_t pick(uint32_t n) { return (uint32_t)(rnd() % n); }

static uint8_t scratch[8192];  // paths, iovecs and out-buffers live here (when in bounds)

static int32_t fd(void) {  // mostly open ones, sometimes stdio or garbage
  uint32_t r = pick(10);
  return r < 7 ? (int32_t)(3 + pick(8)) : r < 9 ? (int32_t)pick(3) : (int32_t)rnd();
}
static int32_t fd_no_stdio(void) {
  int32_t f = fd();
  return f >= 0 && f < 3 ? 3 : f;
}
static P ptr(uint32_t need) {  // inside scratch, at the memory's edge, or anywhere
  uint32_t end = (uint32_t)__builtin_wasm_memory_size(0) * 65536u;
  uint32_t r = pick(10);
  if (r < 7) return (P)(uintptr_t)scratch + pick(sizeof scratch - need);
  if (r < 9) return end - pick(need + 1);
  return (P)rnd();
}
static int32_t len(uint32_t max) { return pick(10) < 9 ? (int32_t)pick(max) : (int32_t)rnd(); }
// A path in scratch: returns its pointer and sets *n.
static P path(int32_t* n) {
  static const char alphabet[] = "a./a./a./b";
  uint32_t off = pick(sizeof scratch - 64), k = 1 + pick(40);
  for (uint32_t i = 0; i < k; ++i) scratch[off + i] = (uint8_t)(pick(50) ? alphabet[pick(10)] : 0);
  *n = pick(20) ? (int32_t)k : len(100000);
  return pick(20) ? (P)(uintptr_t)scratch + off : ptr(64);
}
// iovecs in scratch pointing at scratch, with some bad entries.
static P iovs(int32_t* n) {
  *n = (int32_t)pick(8);
  uint32_t* v = (uint32_t*)scratch;
  for (int32_t i = 0; i < *n; ++i) {
    v[2 * i] = pick(10) ? (uint32_t)(uintptr_t)scratch + 4096 + pick(2048) : (uint32_t)rnd();
    v[2 * i + 1] = pick(10) ? pick(2048) : (uint32_t)rnd();
  }
  if (pick(20) == 0) *n = (int32_t)rnd();
  return pick(10) ? (P)(uintptr_t)scratch : ptr(64);
}

int main(int argc, char** argv) {
  state = strtoull(argv[1], NULL, 10) * 0x9E3779B97F4A7C15ull + 1;
  long iterations = atol(argv[2]);
  long ok = 0;
  for (long i = 0; i < iterations; ++i) {
    int32_t n1, n2, r = 0;
    P a, b;
    switch (pick(31)) {
      case 0: r = f_advise(fd(), (int64_t)rnd(), (int64_t)rnd(), (int32_t)pick(8)); break;
      case 1: r = f_allocate(fd_no_stdio(), (int64_t)pick(100000), (int64_t)pick(100000)); break;
      case 2: r = pick(16) ? 0 : f_close(fd_no_stdio()); break;
      case 3: r = f_datasync(fd()); break;
      case 4: r = f_fdstat_get(fd(), ptr(24)); break;
      case 5: r = f_fdstat_set_flags(fd_no_stdio(), (int32_t)pick(64)); break;
      case 6: r = f_fdstat_set_rights(fd(), (int64_t)rnd(), (int64_t)rnd()); break;
      case 7: r = f_filestat_get(fd(), ptr(64)); break;
      case 8: r = f_filestat_set_size(fd_no_stdio(), pick(4) ? (int64_t)pick(100000) : (int64_t)rnd()); break;
      case 9: r = f_filestat_set_times(fd(), (int64_t)rnd(), (int64_t)rnd(), (int32_t)pick(32)); break;
      case 10: a = iovs(&n1); r = f_pread(fd(), a, n1, (int64_t)rnd(), ptr(4)); break;
      case 11: a = iovs(&n1); r = f_pwrite(fd_no_stdio(), a, n1, (int64_t)pick(100000), ptr(4)); break;
      case 12: a = iovs(&n1); r = f_read(fd(), a, n1, ptr(4)); break;
      case 13: a = iovs(&n1); r = f_write(fd_no_stdio(), a, n1, ptr(4)); break;
      case 14: r = f_readdir(fd(), ptr(512), len(512), pick(4) ? pick(10) : (int64_t)rnd(), ptr(4)); break;
      case 15: r = f_renumber(fd_no_stdio(), fd_no_stdio()); break;
      case 16: r = f_seek(fd(), (int64_t)rnd(), (int32_t)pick(4), ptr(8)); break;
      case 17: r = f_sync(fd()); break;
      case 18: r = f_tell(fd(), ptr(8)); break;
      case 19: r = f_prestat_get(fd(), ptr(8)); break;
      case 20: r = f_prestat_dir_name(fd(), ptr(8), len(16)); break;
      case 21: a = path(&n1); r = p_mkdir(fd(), a, n1); break;
      case 22: a = path(&n1); r = p_stat(fd(), (int32_t)pick(3), a, n1, ptr(64)); break;
      case 23: a = path(&n1); r = p_set_times(fd(), (int32_t)pick(3), a, n1, (int64_t)rnd(), (int64_t)rnd(), (int32_t)pick(32)); break;
      case 24: a = path(&n1); b = path(&n2); r = p_link(fd(), (int32_t)pick(3), a, n1, fd(), b, n2); break;
      case 25:
        a = path(&n1);
        r = p_open(fd(), (int32_t)pick(3), a, n1, (int32_t)pick(32), (int64_t)rnd(), (int64_t)rnd(), (int32_t)pick(64), ptr(4));
        break;
      case 26: a = path(&n1); r = p_readlink(fd(), a, n1, ptr(64), len(64), ptr(4)); break;
      case 27: a = path(&n1); r = p_rmdir(fd(), a, n1); break;
      case 28: a = path(&n1); b = path(&n2); r = p_rename(fd(), a, n1, fd(), b, n2); break;
      case 29: a = path(&n1); b = path(&n2); r = p_symlink(a, n1, fd(), b, n2); break;
      case 30: a = path(&n1); r = p_unlink(fd(), a, n1); break;
    }
    if (r < 0 || r > 76) {
      printf("call %ld returned %d, not a WASI errno\n", i, (int)r);
      return 1;
    }
    ok += r == 0;
  }
  printf("done (%s)\n", ok > 0 ? "some calls succeeded" : "no call succeeded");
  return 0;
}
