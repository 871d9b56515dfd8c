#include "supervisor/policy_sandbox.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

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
  s.net_ns_kind = iso.net_kind() == NetNamespaceKind::kSharedEmpty ? sandbox::NetNsKind::kSharedEmpty
                                                                   : sandbox::NetNsKind::kPerJob;
  s.ipc_ns = mode_of(iso.get(Mechanism::kIpcNamespace));
  s.uts_ns = mode_of(iso.get(Mechanism::kUtsNamespace));
  s.mount_ns = mode_of(iso.get(Mechanism::kMountNamespace));
  s.landlock = mode_of(iso.get(Mechanism::kLandlock));
  s.cgroup = mode_of(iso.get(Mechanism::kCgroup));
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

const sandbox::CgroupHost& job_cgroup_host() {
  static const sandbox::CgroupHost host = [] {
    sandbox::CgroupHost h = sandbox::detect_cgroups();
    sandbox::remove_stale_cgroups(h);  // what a crashed server left (never a live one's)
    return h;
  }();
  return host;
}

namespace {

// Tests only (WASMJAIL_TEST_CGROUP_MEMORY=BYTES): a cgroup memory limit below the policy's,
// so that the cgroup, not RLIMIT_DATA or V8's heap limit, is what a job meets. It can only
// lower the limit.
std::optional<uint64_t> test_cgroup_memory(std::optional<uint64_t> policy_memory) {
  const char* v = getenv("WASMJAIL_TEST_CGROUP_MEMORY");
  if (!v || !*v) return policy_memory;
  uint64_t b = std::strtoull(v, nullptr, 10);
  if (b == 0) return policy_memory;
  return policy_memory ? std::min(*policy_memory, b) : b;
}

}  // namespace

JobCgroupPlan make_job_cgroup(sandbox::Mode level, const Limits& lim, bool simulate_unavailable) {
  JobCgroupPlan plan;
  if (level == sandbox::Mode::kOff) return plan;
  const sandbox::CgroupHost& host = job_cgroup_host();
  plan.version = sandbox::cgroup_version_name(host.version);
  std::string why;
  if (simulate_unavailable) {
    why = "unavailable (simulated)";
  } else {
    static uint64_t seq = 0;
    sandbox::CgroupLimits cl;
    cl.memory_bytes = test_cgroup_memory(lim.memory);
    cl.processes = lim.processes;
    cl.cpu_cores = lim.cpu_quota;
    plan.memory_bytes = cl.memory_bytes;
    plan.cgroup = sandbox::JobCgroup::create(host, sandbox::job_cgroup_name(++seq), cl, &why);
    if (plan.cgroup) return plan;
  }
  if (level == sandbox::Mode::kRequired)
    plan.error = "cgroup is required but cannot be applied: " + why;
  else
    plan.skipped = true;
  return plan;
}

void join_job_cgroup(JobCgroupPlan* plan, sandbox::Mode level, pid_t pid) {
  if (!plan->cgroup) return;
  auto err = plan->cgroup->join(pid);
  if (!err) return;
  plan->cgroup.reset();
  if (level == sandbox::Mode::kRequired)
    plan->error = "cgroup is required but the job cannot join it: " + *err;
  else
    plan->skipped = true;
}

JobCgroupPlan enter_job_cgroup(pid_t pid, sandbox::Mode level, const Limits& effective) {
  JobCgroupPlan plan = make_job_cgroup(level, effective);
  join_job_cgroup(&plan, level, pid);
  return plan;
}

}  // namespace wj
