// Reads its stdin in the way argv[1] says and reports what it saw on stdout.
//   upper   copies stdin to stdout in upper case, then "bytes=N"
//   never   does not touch stdin, prints "done"
//   late    sleeps argv[2] ms first, then as upper
//   poll    waits for fd 0 with poll_oneoff, then as upper (also "ready=1")
//   stat    prints the WASI filetype of fd 0 ("filetype=N"), then as upper
//   lines   echoes each line as it arrives ("line: ...") and flushes at once
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

static void upper(void) {
  char buf[4096];
  size_t total = 0;
  ssize_t n;
  while ((n = read(0, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; ++i) buf[i] = (char)toupper((unsigned char)buf[i]);
    fwrite(buf, 1, (size_t)n, stdout);
    total += (size_t)n;
  }
  printf("bytes=%zu read=%zd\n", total, n);
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "upper";
  if (!strcmp(mode, "never")) {
    printf("done\n");
    return 0;
  }
  if (!strcmp(mode, "late")) {
    long ms = argc > 2 ? atol(argv[2]) : 300;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
  } else if (!strcmp(mode, "poll")) {
    __wasi_subscription_t sub = {0};
    sub.userdata = 7;
    sub.u.tag = __WASI_EVENTTYPE_FD_READ;
    sub.u.u.fd_read.file_descriptor = 0;
    __wasi_event_t ev;
    __wasi_size_t nev = 0;
    __wasi_errno_t e = __wasi_poll_oneoff(&sub, &ev, 1, &nev);
    printf("ready=%d errno=%d userdata=%llu\n", nev == 1 && ev.error == 0, (int)e, (unsigned long long)ev.userdata);
  } else if (!strcmp(mode, "stat")) {
    __wasi_fdstat_t st;
    __wasi_errno_t e = __wasi_fd_fdstat_get(0, &st);
    printf("filetype=%d errno=%d\n", (int)st.fs_filetype, (int)e);
  } else if (!strcmp(mode, "lines")) {
    char line[1024];
    while (fgets(line, sizeof line, stdin)) {
      printf("line: %s", line);
      fflush(stdout);
    }
    printf("eof\n");
    return 0;
  }
  upper();
  return 0;
}
