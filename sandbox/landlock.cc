// Landlock: filesystem access confined to the preopened trees, read-only trees readable
// only, writable trees without device/fifo/socket creation or execution; every other path
// denied. With ABI 4+ TCP bind/connect are denied too, and with ABI 6+ the child can signal
// no process and reach no abstract unix socket outside its domain. Needs no_new_privs.
#include <linux/landlock.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "sandbox/lockdown.h"

namespace wj::sandbox {
namespace {

// Newer than Debian 12's headers: defined here by their kernel values.
constexpr uint64_t kFsTruncate = 1ull << 14;        // ABI 3
constexpr uint64_t kFsIoctlDev = 1ull << 15;        // ABI 5
constexpr uint64_t kNetBindTcp = 1ull << 0;         // ABI 4
constexpr uint64_t kNetConnectTcp = 1ull << 1;      // ABI 4
constexpr uint64_t kScopeAbstractUnix = 1ull << 0;  // ABI 6
constexpr uint64_t kScopeSignal = 1ull << 1;        // ABI 6

struct RulesetAttr {  // landlock_ruleset_attr as of ABI 6
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};

}  // namespace

std::optional<std::string> restrict_filesystem(const std::vector<PreopenMount>& mounts,
                                               const std::vector<int>& preopen_fds, bool* unavailable) {
  *unavailable = false;
  long abi = syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (abi < 1) {
    *unavailable = true;
    return errno_message("landlock_create_ruleset(VERSION)", errno);
  }
  uint64_t fs = (1ull << 13) - 1;  // ABI 1: EXECUTE .. MAKE_SYM
  if (abi >= 2) fs |= LANDLOCK_ACCESS_FS_REFER;
  if (abi >= 3) fs |= kFsTruncate;
  if (abi >= 5) fs |= kFsIoctlDev;
  RulesetAttr attr{fs, 0, 0};
  size_t size = sizeof(uint64_t);
  if (abi >= 4) attr.handled_access_net = kNetBindTcp | kNetConnectTcp, size = 2 * sizeof(uint64_t);
  if (abi >= 6) attr.scoped = kScopeAbstractUnix | kScopeSignal, size = sizeof attr;
  int ruleset = static_cast<int>(syscall(SYS_landlock_create_ruleset, &attr, size, 0));
  if (ruleset < 0) return errno_message("landlock_create_ruleset", errno);

  const uint64_t read_only = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
  const uint64_t writable =
      fs & (read_only | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |
            LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
            LANDLOCK_ACCESS_FS_MAKE_SYM | LANDLOCK_ACCESS_FS_REFER | kFsTruncate);
  std::optional<std::string> err;
  for (size_t i = 0; i < preopen_fds.size() && !err; ++i) {
    bool ro = i < mounts.size() ? mounts[i].read_only : true;
    landlock_path_beneath_attr rule{ro ? read_only : writable, preopen_fds[i]};
    if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0)
      err = errno_message("landlock_add_rule", errno);
  }
  if (!err && syscall(SYS_landlock_restrict_self, ruleset, 0) != 0)
    err = errno_message("landlock_restrict_self", errno);
  close(ruleset);
  return err;
}

}  // namespace wj::sandbox
