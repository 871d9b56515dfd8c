#include "supervisor/policy_sandbox.h"

#include <sys/statfs.h>

#include <cmath>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

namespace wj {
namespace {

sandbox::Mode mode_of(Isolation i) {
  switch (i) {
    case Isolation::kRequired: return sandbox::Mode::kRequired;
    case Isolation::kBestEffort: return sandbox::Mode::kBestEffort;
    case Isolation::kOff: return sandbox::Mode::kOff;
  }
  return sandbox::Mode::kRequired;
}

sandbox::ArgCondition::Op op_of(ArgCondition::Op op) {
  switch (op) {
    case ArgCondition::kEq: return sandbox::ArgCondition::Op::kEq;
    case ArgCondition::kNe: return sandbox::ArgCondition::Op::kNe;
    case ArgCondition::kLt: return sandbox::ArgCondition::Op::kLt;
    case ArgCondition::kLe: return sandbox::ArgCondition::Op::kLe;
    case ArgCondition::kGt: return sandbox::ArgCondition::Op::kGt;
    case ArgCondition::kGe: return sandbox::ArgCondition::Op::kGe;
    case ArgCondition::kMaskedEq: return sandbox::ArgCondition::Op::kMaskedEq;
  }
  return sandbox::ArgCondition::Op::kEq;
}

// RLIMIT_NOFILE counts every fd of the child: stdio, the record pipe, preopens and V8's own.
constexpr uint64_t kOwnFds = 16;

}  // namespace

sandbox::SandboxSpec sandbox_spec_for(const Policy& p, const Limits& lim) {
  sandbox::SandboxSpec s;
  const IsolationSettings& iso = p.isolation;
  s.user_ns = mode_of(iso.get(Mechanism::kUserNamespace));
  s.pid_ns = mode_of(iso.get(Mechanism::kPidNamespace));
  s.net_ns = mode_of(iso.get(Mechanism::kNetNamespace));
  s.ipc_ns = mode_of(iso.get(Mechanism::kIpcNamespace));
  s.uts_ns = mode_of(iso.get(Mechanism::kUtsNamespace));
  s.mount_ns = mode_of(iso.get(Mechanism::kMountNamespace));
  s.landlock = mode_of(iso.get(Mechanism::kLandlock));
  s.filesystem = mode_of(iso.get(Mechanism::kFilesystem));

  const SeccompAction act = p.seccomp.action();
  switch (act.kind) {
    case SeccompAction::kTrap: s.seccomp.default_action = sandbox::SeccompSpec::DefaultAction::kTrap; break;
    case SeccompAction::kKill: s.seccomp.default_action = sandbox::SeccompSpec::DefaultAction::kKill; break;
    case SeccompAction::kLog: s.seccomp.default_action = sandbox::SeccompSpec::DefaultAction::kLog; break;
    case SeccompAction::kErrno:
      s.seccomp.default_action = sandbox::SeccompSpec::DefaultAction::kErrno;
      s.seccomp.default_errno = act.errno_value;
      break;
  }
  for (const SyscallRule& r : p.seccomp.allow) {
    sandbox::SyscallRule out{r.name, {}};
    for (const ArgCondition& c : r.args) out.conditions.push_back({c.index, op_of(c.op), c.value, c.mask});
    s.seccomp.allow.push_back(std::move(out));
  }
  s.seccomp.kill = p.seccomp.kill;
  for (const auto& [name, err] : p.seccomp.errno_) s.seccomp.errno_rules.push_back({name, err});

  if (lim.open_files) s.rlimits.nofile = *lim.open_files + kOwnFds;
  if (lim.output_bytes) s.rlimits.fsize = *lim.output_bytes;  // no one file may exceed all outputs
  if (lim.memory) s.rlimits.data = *lim.memory;               // RLIMIT_DATA, never RLIMIT_AS
  if (lim.cpu_time_ms) s.rlimits.cpu_seconds = static_cast<uint64_t>(std::ceil(*lim.cpu_time_ms / 1000.0));
  return s;
}

std::optional<std::string> cgroup_unavailable_reason() {
  struct statfs fs {};
  if (statfs("/sys/fs/cgroup", &fs) != 0 || static_cast<unsigned long>(fs.f_type) != CGROUP2_SUPER_MAGIC)
    return "cgroup: this machine has no cgroup v2 hierarchy at /sys/fs/cgroup (cgroup v1 or none)";
  return "cgroup: per-job cgroup v2 limits are not implemented by this wasmjail";
}

}  // namespace wj
