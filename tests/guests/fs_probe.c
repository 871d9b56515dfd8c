// fs_probe: runs the filesystem operations given as arguments straight against the WASI
// imports (no libc path handling in between) on the first preopen, and prints one line per
// operation: "OP|ARGS: ok[ DETAIL]" or "OP|ARGS: errno N" (N a WASI errno).
//
// Operations (fields separated by '|'):
//   read|P  readnf|P  write|P  append|P  truncate|P  mkdir|P  rmdir|P  unlink|P
//   rename|A|B  symlink|TARGET|P  link|A|B  readlink|P  stat|P  lstat|P  touch|P  ltouch|P
//   readnul (a path with a NUL byte inside)  longname|N (one N-byte component)
//   longpath|N (an N-byte path of "./")  preopen|NAME (use the preopen named NAME)
//   stdin (read fd 0)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(#name)))

typedef struct {
  const void* buf;
  uint32_t len;
} iov_t;

IMPORT(path_open)
int32_t w_path_open(int32_t fd, int32_t dirflags, const char* path, int32_t len, int32_t oflags,
                    int64_t base, int64_t inh, int32_t fdflags, uint32_t* fd_out);
IMPORT(fd_read) int32_t w_fd_read(int32_t fd, const iov_t* iovs, int32_t n, uint32_t* nread);
IMPORT(fd_write) int32_t w_fd_write(int32_t fd, const iov_t* iovs, int32_t n, uint32_t* nwritten);
IMPORT(fd_close) int32_t w_fd_close(int32_t fd);
IMPORT(fd_filestat_set_size) int32_t w_fd_filestat_set_size(int32_t fd, int64_t size);
IMPORT(path_create_directory) int32_t w_mkdir(int32_t fd, const char* p, int32_t len);
IMPORT(path_remove_directory) int32_t w_rmdir(int32_t fd, const char* p, int32_t len);
IMPORT(path_unlink_file) int32_t w_unlink(int32_t fd, const char* p, int32_t len);
IMPORT(path_rename)
int32_t w_rename(int32_t fd, const char* a, int32_t alen, int32_t fd2, const char* b, int32_t blen);
IMPORT(path_symlink)
int32_t w_symlink(const char* target, int32_t tlen, int32_t fd, const char* p, int32_t plen);
IMPORT(path_link)
int32_t w_link(int32_t fd, int32_t flags, const char* a, int32_t alen, int32_t fd2, const char* b,
               int32_t blen);
IMPORT(path_readlink)
int32_t w_readlink(int32_t fd, const char* p, int32_t len, char* buf, int32_t buflen, uint32_t* used);
IMPORT(path_filestat_get)
int32_t w_stat(int32_t fd, int32_t flags, const char* p, int32_t len, uint8_t* out);
IMPORT(path_filestat_set_times)
int32_t w_set_times(int32_t fd, int32_t flags, const char* p, int32_t len, int64_t atim,
                    int64_t mtim, int32_t fst);
IMPORT(fd_prestat_get) int32_t w_prestat_get(int32_t fd, uint32_t* out);
IMPORT(fd_prestat_dir_name) int32_t w_prestat_dir_name(int32_t fd, char* buf, int32_t len);

enum { FOLLOW = 1, CREAT = 1, TRUNC = 8, APPEND = 1 };
#define R_READ (1ull << 1)
#define R_WRITE (1ull << 6)
#define R_SET_SIZE (1ull << 22)

static int dir = 3;

static void report(const char* op, int32_t e, const char* detail) {
  if (e == 0)
    printf("%s: ok%s%s\n", op, detail ? " " : "", detail ? detail : "");
  else
    printf("%s: errno %d\n", op, (int)e);
}

static int32_t open_at(const char* p, size_t len, int32_t dirflags, int32_t oflags, uint64_t rights,
                       int32_t fdflags, uint32_t* fd) {
  return w_path_open(dir, dirflags, p, (int32_t)len, oflags, (int64_t)rights, 0, fdflags, fd);
}

// Opens and reads up to 100 bytes, reported as 'content'.
static void do_read(const char* op, const char* p, size_t len, int32_t dirflags) {
  uint32_t fd;
  int32_t e = open_at(p, len, dirflags, 0, R_READ, 0, &fd);
  if (e) return report(op, e, NULL);
  char buf[101] = {0};
  iov_t iov = {buf, 100};
  uint32_t n = 0;
  e = w_fd_read((int32_t)fd, &iov, 1, &n);
  w_fd_close((int32_t)fd);
  char detail[128];
  snprintf(detail, sizeof detail, "'%.*s'", (int)n, buf);
  report(op, e, e ? NULL : detail);
}

static void do_write(const char* op, const char* p, int32_t oflags, int32_t fdflags) {
  uint32_t fd;
  int32_t e = open_at(p, strlen(p), FOLLOW, oflags, R_WRITE, fdflags, &fd);
  if (e) return report(op, e, NULL);
  iov_t iov = {"pwned", 5};
  uint32_t n;
  e = w_fd_write((int32_t)fd, &iov, 1, &n);
  w_fd_close((int32_t)fd);
  report(op, e, NULL);
}

static void do_stat(const char* op, const char* p, int32_t flags) {
  uint8_t st[64];
  int32_t e = w_stat(dir, flags, p, (int32_t)strlen(p), st);
  char detail[64];
  uint64_t size;
  memcpy(&size, st + 32, 8);
  snprintf(detail, sizeof detail, "type=%d size=%llu", st[16], (unsigned long long)size);
  report(op, e, e ? NULL : detail);
}

static int find_preopen(const char* name) {
  for (int fd = 3; fd < 64; ++fd) {
    uint32_t pre[2];
    if (w_prestat_get(fd, pre)) continue;
    char buf[256] = {0};
    if (pre[1] < sizeof buf && !w_prestat_dir_name(fd, buf, (int32_t)pre[1]) && strcmp(buf, name) == 0)
      return fd;
  }
  return -1;
}

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    char* op = argv[i];
    char* fields[3] = {0};
    char copy[8192];
    snprintf(copy, sizeof copy, "%s", op);
    int nf = 0;
    for (char* s = strtok(copy, "|"); s && nf < 3; s = strtok(NULL, "|")) fields[nf++] = s;
    const char* cmd = fields[0];
    const char* a = nf > 1 ? fields[1] : "";
    const char* b = nf > 2 ? fields[2] : "";
    if (!strcmp(cmd, "read")) {
      do_read(op, a, strlen(a), FOLLOW);
    } else if (!strcmp(cmd, "readnf")) {
      do_read(op, a, strlen(a), 0);
    } else if (!strcmp(cmd, "readnul")) {
      static const char p[] = "file.txt\0../outside/secret.txt";
      do_read(op, p, sizeof p - 1, FOLLOW);
    } else if (!strcmp(cmd, "longname") || !strcmp(cmd, "longpath")) {
      size_t n = (size_t)atoi(a);
      char* p = malloc(n + 1);
      for (size_t k = 0; k < n; ++k) p[k] = cmd[4] == 'n' ? 'x' : (k % 2 ? '/' : '.');
      p[n] = 0;
      printf("%s ", cmd);
      do_read(a, p, n, FOLLOW);
      free(p);
    } else if (!strcmp(cmd, "write")) {
      do_write(op, a, CREAT | TRUNC, 0);
    } else if (!strcmp(cmd, "append")) {
      do_write(op, a, 0, APPEND);
    } else if (!strcmp(cmd, "truncate")) {
      uint32_t fd;
      int32_t e = open_at(a, strlen(a), FOLLOW, 0, R_SET_SIZE, 0, &fd);
      if (!e) {
        e = w_fd_filestat_set_size((int32_t)fd, 0);
        w_fd_close((int32_t)fd);
      }
      report(op, e, NULL);
    } else if (!strcmp(cmd, "mkdir")) {
      report(op, w_mkdir(dir, a, (int32_t)strlen(a)), NULL);
    } else if (!strcmp(cmd, "rmdir")) {
      report(op, w_rmdir(dir, a, (int32_t)strlen(a)), NULL);
    } else if (!strcmp(cmd, "unlink")) {
      report(op, w_unlink(dir, a, (int32_t)strlen(a)), NULL);
    } else if (!strcmp(cmd, "rename")) {
      report(op, w_rename(dir, a, (int32_t)strlen(a), dir, b, (int32_t)strlen(b)), NULL);
    } else if (!strcmp(cmd, "symlink")) {
      report(op, w_symlink(a, (int32_t)strlen(a), dir, b, (int32_t)strlen(b)), NULL);
    } else if (!strcmp(cmd, "link")) {
      report(op, w_link(dir, 0, a, (int32_t)strlen(a), dir, b, (int32_t)strlen(b)), NULL);
    } else if (!strcmp(cmd, "readlink")) {
      char buf[256];
      uint32_t used = 0;
      int32_t e = w_readlink(dir, a, (int32_t)strlen(a), buf, sizeof buf, &used);
      char detail[300];
      snprintf(detail, sizeof detail, "'%.*s'", (int)used, buf);
      report(op, e, e ? NULL : detail);
    } else if (!strcmp(cmd, "stat")) {
      do_stat(op, a, FOLLOW);
    } else if (!strcmp(cmd, "lstat")) {
      do_stat(op, a, 0);
    } else if (!strcmp(cmd, "touch") || !strcmp(cmd, "ltouch")) {
      // mtime := 1 s after the epoch: easy to spot on the host.
      report(op, w_set_times(dir, cmd[0] == 't' ? FOLLOW : 0, a, (int32_t)strlen(a), 0, 1000000000, 4),
             NULL);
    } else if (!strcmp(cmd, "stdin")) {
      char buf[64];
      iov_t iov = {buf, sizeof buf};
      uint32_t n = 99;
      int32_t e = w_fd_read(0, &iov, 1, &n);
      char detail[32];
      snprintf(detail, sizeof detail, "%u bytes", n);
      report(op, e, e ? NULL : detail);
    } else if (!strcmp(cmd, "preopen")) {
      dir = find_preopen(a);
      printf("%s: fd %d\n", op, dir);
    } else {
      printf("%s: unknown operation\n", op);
      return 2;
    }
  }
  return 0;
}
