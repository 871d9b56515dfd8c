// Resource limits applied with setrlimit. (RLIMIT_AS is never used: V8 reserves guard
// regions of ~10 GiB per wasm memory, which an address-space limit breaks.)
#include <signal.h>
#include <sys/resource.h>

#include <cerrno>

#include "sandbox/lockdown.h"

namespace wj::sandbox {

std::optional<std::string> disable_core_dumps() {
  rlimit rl{0, 0};
  if (setrlimit(RLIMIT_CORE, &rl) != 0) return errno_message("setrlimit(RLIMIT_CORE)", errno);
  return std::nullopt;
}

std::optional<std::string> apply_rlimits(const RlimitSpec& spec) {
  struct Item {
    int resource;
    const char* name;
    const std::optional<uint64_t>* value;
  };
  const Item items[] = {
      {RLIMIT_NOFILE, "setrlimit(RLIMIT_NOFILE)", &spec.nofile},
      {RLIMIT_FSIZE, "setrlimit(RLIMIT_FSIZE)", &spec.fsize},
      {RLIMIT_NPROC, "setrlimit(RLIMIT_NPROC)", &spec.nproc},
      {RLIMIT_DATA, "setrlimit(RLIMIT_DATA)", &spec.data},
      {RLIMIT_STACK, "setrlimit(RLIMIT_STACK)", &spec.stack},
      {RLIMIT_CPU, "setrlimit(RLIMIT_CPU)", &spec.cpu_seconds},
  };
  for (const Item& it : items) {
    if (!*it.value) continue;
    rlim_t v = static_cast<rlim_t>(**it.value);
    rlimit cur{};
    if (getrlimit(it.resource, &cur) != 0) return errno_message(it.name, errno);
    // Never raise a limit above what the supervisor itself was given.
    if (cur.rlim_max != RLIM_INFINITY && v > cur.rlim_max) v = cur.rlim_max;
    rlimit rl{v, v};
    // CPU: the soft limit sends SIGXCPU (fatal by default) a second before SIGKILL.
    if (it.resource == RLIMIT_CPU && (cur.rlim_max == RLIM_INFINITY || v + 1 <= cur.rlim_max))
      rl.rlim_max = v + 1;
    if (setrlimit(it.resource, &rl) != 0) return errno_message(it.name, errno);
  }
  // Past RLIMIT_FSIZE a write fails with EFBIG (a WASI errno) instead of killing the job.
  if (spec.fsize) signal(SIGXFSZ, SIG_IGN);
  return disable_core_dumps();
}

}  // namespace wj::sandbox
