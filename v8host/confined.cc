#include "v8host/confined.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>

#include <cerrno>

#include "v8host/wasi_abi.h"
#include "v8host/wasi_util.h"

namespace wj {

int open_beneath(int dirfd, const std::string& path, int flags, unsigned mode) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;  // openat2 rejects a mode without O_CREAT
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  const char* p = path.c_str();  // "" stays "": ENOENT, as for any empty path
  for (int attempt = 0;; ++attempt) {
    long fd = syscall(SYS_openat2, dirfd, p, &how, sizeof how);  // NOLINT(cppcoreguidelines-pro-type-vararg)
    if (fd >= 0) return static_cast<int>(fd);
    // EAGAIN: a concurrent rename raced the walk; the kernel asks us to retry.
    if ((errno == EAGAIN && attempt < 16) || errno == EINTR) continue;
    return -1;
  }
}

uint16_t resolve_errno(int e) {
  return e == EXDEV ? uint16_t{wasi::kPerm} : wasi::errno_to_wasi(e);
}

uint16_t resolve_parent(int dirfd, const std::string& path, ParentRef* out) {
  if (path.empty()) return wasi::kNoEnt;
  size_t end = path.size();
  while (end > 0 && path[end - 1] == '/') --end;
  // Only slashes: the root of the host filesystem, which is never beneath anything.
  if (end == 0) return wasi::kPerm;
  out->trailing_slash = end < path.size();
  size_t slash = path.rfind('/', end - 1);
  std::string parent;
  if (slash == std::string::npos) {
    parent = ".";
    out->name = path.substr(0, end);
  } else {
    parent = path.substr(0, slash + 1);  // keeps a leading '/', which openat2 refuses
    out->name = path.substr(slash + 1, end - slash - 1);
  }
  out->dot_name = out->name == "." || out->name == "..";
  if (out->trailing_slash) out->name += '/';
  int fd = open_beneath(dirfd, parent, O_PATH | O_DIRECTORY, 0);
  if (fd < 0) return resolve_errno(errno);
  out->dir = UniqueFd(fd);
  return wasi::kSuccess;
}

}  // namespace wj
