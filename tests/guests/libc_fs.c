// libc_fs: ordinary POSIX file handling through wasi-libc (which maps absolute paths onto
// the preopen "/data"): the calls real C programs make, each result printed.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp(const void* a, const void* b) { return strcmp(*(char* const*)a, *(char* const*)b); }

int main(void) {
  FILE* f = fopen("/data/notes.txt", "w");
  fputs("line one\nline two\n", f);
  fclose(f);
  f = fopen("/data/notes.txt", "a");
  fputs("line three\n", f);
  fclose(f);
  char buf[128] = {0};
  f = fopen("/data/notes.txt", "r");
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  printf("read %zu bytes:\n%s", n, buf);

  printf("mkdir: %d\n", mkdir("/data/dir", 0755));
  printf("mkdir again: %d %s\n", mkdir("/data/dir", 0755), strerror(errno));
  printf("rename: %d\n", rename("/data/notes.txt", "/data/dir/renamed.txt"));
  struct stat st;
  printf("stat: %d size=%lld regular=%d\n", stat("/data/dir/renamed.txt", &st), (long long)st.st_size,
         S_ISREG(st.st_mode));
  printf("symlink: %d\n", symlink("renamed.txt", "/data/dir/link"));
  char target[64] = {0};
  printf("readlink: %zd %s\n", readlink("/data/dir/link", target, sizeof target - 1), target);
  printf("lstat is link: %d\n", lstat("/data/dir/link", &st) == 0 && S_ISLNK(st.st_mode));

  int fd = open("/data/dir/renamed.txt", O_RDWR);
  printf("lseek end: %lld\n", (long long)lseek(fd, 0, SEEK_END));
  printf("ftruncate: %d\n", ftruncate(fd, 4));
  printf("pwrite: %zd\n", pwrite(fd, "LINE", 4, 0));
  close(fd);
  f = fopen("/data/dir/link", "r");
  memset(buf, 0, sizeof buf);
  fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  printf("through link: %s\n", buf);

  printf("chdir: %d\n", chdir("/data/dir"));
  printf("access relative: %d\n", access("renamed.txt", R_OK));

  DIR* d = opendir("/data/dir");
  char* names[16];
  int count = 0;
  for (struct dirent* e; (e = readdir(d)) && count < 16;) names[count++] = strdup(e->d_name);
  closedir(d);
  qsort(names, (size_t)count, sizeof names[0], cmp);
  printf("readdir:");
  for (int i = 0; i < count; ++i) printf(" %s", names[i]);
  printf("\n");

  printf("open outside: %d %s\n", open("/etc/passwd", O_RDONLY), strerror(errno));
  printf("open dotdot: %d %s\n", open("/data/../etc/passwd", O_RDONLY), strerror(errno));
  printf("rmdir nonempty: %d %s\n", rmdir("/data/dir"), strerror(errno));
  printf("unlink link: %d\n", unlink("/data/dir/link"));
  printf("unlink file: %d\n", unlink("/data/dir/renamed.txt"));
  printf("rmdir: %d\n", rmdir("/data/dir"));
  printf("stat gone: %d %s\n", stat("/data/dir", &st), strerror(errno));
  return 0;
}
