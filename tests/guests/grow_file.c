// Appends 64 KiB blocks to /out/big.bin until a write fails; reports the errno and size.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>

int main(void) {
  static char buf[65536];
  memset(buf, 'y', sizeof buf);
  int fd = open("/out/big.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    perror("open");
    return 2;
  }
  long total = 0;
  for (;;) {
    ssize_t n = write(fd, buf, sizeof buf);
    if (n < 0) {
      printf("stopped after %ld bytes: %s\n", total, strerror(errno));
      return 0;
    }
    total += n;
  }
}
