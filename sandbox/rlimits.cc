// Resource limits applied with setrlimit. (RLIMIT_AS is never used: V8 reserves guard
// regions of ~10 GiB per wasm memory, which an address-space limit breaks.)
#include <sys/resource.h>

#include <cerrno>

#include "sandbox/lockdown.h"

namespace wj::sandbox {

std::optional<std::string> disable_core_dumps() {
  rlimit rl{0, 0};
  if (setrlimit(RLIMIT_CORE, &rl) != 0) return errno_message("setrlimit(RLIMIT_CORE)", errno);
  return std::nullopt;
}

}  // namespace wj::sandbox
