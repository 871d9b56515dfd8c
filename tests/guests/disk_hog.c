// Tries to use more disk than its caps allow, three ways (argv[1]):
//   sparse N: writes one byte at offsets 100 MiB apart in N files (holes = apparent size)
//   dirs N:   makes N folders
//   links N:  makes N symlinks
// Prints how far it got and the errno text of the first refusal.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  int n = atoi(argv[2]);
  int done = 0;
  for (; done < n; ++done) {
    char name[64];
    int rc;
    if (strcmp(argv[1], "sparse") == 0) {
      snprintf(name, sizeof name, "/out/sparse%d", done);
      int fd = open(name, O_WRONLY | O_CREAT, 0644);
      if (fd < 0) break;
      rc = pwrite(fd, "x", 1, (off_t)100 << 20) == 1 ? 0 : -1;
      int e = errno;
      close(fd);
      errno = e;
    } else if (strcmp(argv[1], "dirs") == 0) {
      snprintf(name, sizeof name, "/out/d%d", done);
      rc = mkdir(name, 0755);
    } else {
      snprintf(name, sizeof name, "/out/l%d", done);
      rc = symlink("x", name);
    }
    if (rc != 0) {
      printf("stopped after %d: %s\n", done, strerror(errno));
      return 0;
    }
  }
  printf("made %d\n", done);
  return 0;
}
