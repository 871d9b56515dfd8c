// Maps a resolved Policy (and the job's effective limits) onto the sandbox's plain input.
// Lives in supervisor/: it is where policies/ and sandbox/ meet.
#pragma once

#include <optional>
#include <string>

#include "policies/policy.h"
#include "sandbox/sandbox_spec.h"

namespace wj {

sandbox::SandboxSpec sandbox_spec_for(const Policy& policy, const Limits& effective);

// cgroup v2 limits need a delegated cgroup2 hierarchy; wasmjail does not create per-job
// cgroups yet. nullopt when a policy's `cgroup` level can be honoured (off), else why not.
std::optional<std::string> cgroup_unavailable_reason();

}  // namespace wj
