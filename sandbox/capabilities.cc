// Capabilities: every set emptied, so even a child that is root (or root of its own user
// namespace) holds no privilege: bounding and ambient sets first (dropping the bounding
// set needs CAP_SETPCAP, which the capset below removes), then effective/permitted/inheritable.
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/lockdown.h"

namespace wj::sandbox {

std::optional<std::string> drop_capabilities() {
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    return errno_message("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", errno);
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct cur[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &hdr, cur) != 0) return errno_message("capget", errno);
  // Dropping from the bounding set needs CAP_SETPCAP. A process without it (a non-root
  // supervisor and no user namespace) holds no capability to lose, and the bounding set
  // only limits what an execve could grant: no_new_privs and the filter rule that out.
  const bool can_setpcap = cur[CAP_SETPCAP / 32].effective & (1u << (CAP_SETPCAP % 32));
  for (unsigned long cap = 0; can_setpcap && cap <= 63; ++cap) {
    if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0) break;  // past this kernel's last capability
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return errno_message("prctl(PR_CAPBSET_DROP)", errno);
  }
  hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capset, &hdr, data) != 0) return errno_message("capset", errno);
  return std::nullopt;
}

}  // namespace wj::sandbox
