// SandboxSpec helpers: mechanism names, modes, and the test-only unavailability switch.
#include "sandbox/sandbox_spec.h"

#include <string_view>

namespace wj::sandbox {

const char* mechanism_name(Mechanism m) {
  switch (m) {
    case Mechanism::kUserNs: return "user_ns";
    case Mechanism::kPidNs: return "pid_ns";
    case Mechanism::kNetNs: return "net_ns";
    case Mechanism::kIpcNs: return "ipc_ns";
    case Mechanism::kUtsNs: return "uts_ns";
    case Mechanism::kMountNs: return "mount_ns";
    case Mechanism::kLandlock: return "landlock";
    case Mechanism::kSeccomp: return "seccomp";
    case Mechanism::kCapabilities: return "capabilities";
    case Mechanism::kRlimits: return "rlimits";
    case Mechanism::kCgroup: return "cgroup";
  }
  return "unknown";
}

Mode mode_of(const SandboxSpec& s, Mechanism m) {
  switch (m) {
    case Mechanism::kUserNs: return s.user_ns;
    case Mechanism::kPidNs: return s.pid_ns;
    case Mechanism::kNetNs: return s.net_ns;
    case Mechanism::kIpcNs: return s.ipc_ns;
    case Mechanism::kUtsNs: return s.uts_ns;
    case Mechanism::kMountNs: return s.mount_ns;
    case Mechanism::kLandlock: return s.landlock;
    case Mechanism::kSeccomp: return s.seccomp.mode;
    case Mechanism::kCapabilities: return s.capabilities;
    case Mechanism::kRlimits: return Mode::kRequired;  // core 0 at least, always
    case Mechanism::kCgroup: return s.cgroup;
  }
  return Mode::kRequired;
}

const char* net_ns_kind_name(NetNsKind k) {
  return k == NetNsKind::kSharedEmpty ? "shared_empty" : "per_job";
}

std::optional<std::string> apply_test_unavailable(const char* value, SandboxSpec* spec) {
  if (!value || !*value) return std::nullopt;
  std::string_view rest(value);
  while (!rest.empty()) {
    auto comma = rest.find(',');
    std::string_view name = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    bool found = false;
    for (unsigned i = 0; i < kMechanismCount; ++i) {
      if (name == mechanism_name(static_cast<Mechanism>(i))) {
        spec->simulate_unavailable |= 1u << i;
        found = true;
      }
    }
    if (!found) return "WASMJAIL_TEST_UNAVAILABLE: unknown mechanism \"" + std::string(name) + "\"";
  }
  return std::nullopt;
}

}  // namespace wj::sandbox
