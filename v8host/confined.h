// Confined path resolution: every guest path is resolved by the kernel beneath the
// directory fd it is relative to (openat2 with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS),
// never by inspecting path strings. `..` above that directory, absolute paths and symlinks
// leading out (directly or through a chain) fail with EXDEV, reported as ERRNO_PERM.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <string>

namespace wj {

// Owns one host fd.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// Opens `path` beneath `dirfd` (O_CLOEXEC is added). Returns the fd, or -1 with errno set;
// an escape attempt gives EXDEV.
int open_beneath(int dirfd, const std::string& path, int flags, unsigned mode);

// WASI errno for a failed resolution: EXDEV (an escape) becomes ERRNO_PERM.
uint16_t resolve_errno(int e);

// The directory holding a path's last component, opened (O_PATH) beneath the base fd, and
// that component. Calls that act on a name (unlinkat, mkdirat, renameat, symlinkat, linkat,
// readlinkat) use `dir` + `name`, so the kernel never walks anything the guest named
// outside of what openat2 already confined.
struct ParentRef {
  UniqueFd dir;
  std::string name;  // last component, with one trailing '/' kept if the path had any
  bool trailing_slash = false;
  bool dot_name = false;  // last component is "." or "..": the kernel resolves it itself
};

// Returns a WASI errno (0 on success).
uint16_t resolve_parent(int dirfd, const std::string& path, ParentRef* out);

}  // namespace wj
