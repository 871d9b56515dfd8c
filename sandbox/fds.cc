// File descriptors: the child keeps only its report pipes and preopened directories.
#include <linux/close_range.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include "sandbox/lockdown.h"

namespace wj::sandbox {

std::optional<std::string> close_fds_except(const std::vector<int>& keep_in) {
  std::vector<int> keep = keep_in;
  std::sort(keep.begin(), keep.end());
  unsigned lo = 0;
  for (int fd : keep) {
    if (fd < 0) continue;
    if (static_cast<unsigned>(fd) > lo &&
        syscall(SYS_close_range, lo, static_cast<unsigned>(fd) - 1, 0) != 0)
      return errno_message("close_range", errno);
    lo = static_cast<unsigned>(fd) + 1;
  }
  if (syscall(SYS_close_range, lo, UINT_MAX, 0) != 0) return errno_message("close_range", errno);
  return std::nullopt;
}

}  // namespace wj::sandbox
