// readdir_many: lists the first preopen with raw fd_readdir calls, resuming from the
// cookie of the last complete entry each time (the buffer size is argv[1]), and checks
// that the files f00000..f{N-1} (N = argv[2]) each appear exactly once.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((import_module("wasi_snapshot_preview1"), import_name("fd_readdir")))
int32_t w_fd_readdir(int32_t fd, uint8_t* buf, int32_t len, int64_t cookie, uint32_t* used);

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  uint32_t bufsize = (uint32_t)atoi(argv[1]);
  int n = atoi(argv[2]);
  uint8_t* buf = malloc(bufsize);
  unsigned char* seen = calloc((size_t)n, 1);
  uint64_t cookie = 0;
  int entries = 0, dups = 0, others = 0, calls = 0, dots = 0;
  for (;;) {
    uint32_t used = 0;
    int32_t e = w_fd_readdir(3, buf, (int32_t)bufsize, (int64_t)cookie, &used);
    ++calls;
    if (e) {
      printf("fd_readdir errno %d\n", (int)e);
      return 1;
    }
    uint32_t off = 0;
    int complete = 0;
    while (off + 24 <= used) {
      uint64_t next;
      uint32_t namlen;
      memcpy(&next, buf + off, 8);
      memcpy(&namlen, buf + off + 16, 4);
      if (off + 24 + namlen > used) break;  // cut at the buffer's end: read again from cookie
      char name[256] = {0};
      memcpy(name, buf + off + 24, namlen < 255 ? namlen : 255);
      ++entries;
      ++complete;
      int k;
      if (!strcmp(name, ".") || !strcmp(name, "..")) {
        ++dots;
      } else if (sscanf(name, "f%05d", &k) == 1 && k >= 0 && k < n && namlen == 6) {
        if (seen[k]++) ++dups;
      } else {
        ++others;
      }
      cookie = next;
      off += 24 + namlen;
    }
    if (used < bufsize) break;  // a short buffer means the end of the directory
    if (complete == 0) {
      printf("buffer of %u bytes holds no complete entry\n", bufsize);
      return 1;
    }
  }
  int missing = 0;
  for (int k = 0; k < n; ++k) missing += !seen[k];
  printf("entries=%d dots=%d dups=%d missing=%d others=%d multiple_calls=%s\n", entries, dots, dups,
         missing, others, calls > 1 ? "yes" : "no");
  // A buffer smaller than one entry is filled with the start of that entry.
  uint8_t tiny[10];
  uint32_t used = 0;
  int32_t e = w_fd_readdir(3, tiny, sizeof tiny, 0, &used);
  printf("tiny buffer: errno %d used=%u\n", (int)e, used);
  return 0;
}
