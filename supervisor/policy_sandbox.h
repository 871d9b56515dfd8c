// Maps a resolved Policy (and the job's effective limits) onto the sandbox's plain input.
// Lives in supervisor/: it is where policies/ and sandbox/ meet.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "policies/policy.h"
#include "sandbox/cgroup.h"
#include "sandbox/sandbox_spec.h"

namespace wj {

sandbox::SandboxSpec sandbox_spec_for(const Policy& policy, const Limits& effective);

// This host's cgroup layout, detected at the first call (once per process); that first
// call also removes the job cgroups left by servers that died (sandbox/cgroup.h).
const sandbox::CgroupHost& job_cgroup_host();

// The cgroup side of one job, as its policy's isolation.cgroup level asks.
struct JobCgroupPlan {
  std::unique_ptr<sandbox::JobCgroup> cgroup;  // null: none (off, or skipped)
  bool skipped = false;                        // best_effort and impossible here
  std::optional<std::string> error;            // required and impossible: the job must not run
  std::string version;                         // "v1", "v2" or "none"
  std::optional<uint64_t> memory_bytes;        // the cgroup's memory limit, for messages
};
// Creates the job's cgroup with the limits memory, processes and cpu_quota of `effective`
// (before the job process exists, so that it can be born in it: CLONE_INTO_CGROUP).
// `simulate_unavailable` is the test switch (WASMJAIL_TEST_UNAVAILABLE=cgroup).
JobCgroupPlan make_job_cgroup(sandbox::Mode level, const Limits& effective,
                              bool simulate_unavailable = false);
// Puts `pid` in the plan's cgroup; call it before the job's go-ahead. A failure drops the
// cgroup and sets `error` (required) or `skipped` (best_effort).
void join_job_cgroup(JobCgroupPlan* plan, sandbox::Mode level, pid_t pid);
// Both at once, for a process that already exists when its job arrives (a warm pool):
// the job process `pid` must not run job code before this returns without `error`.
JobCgroupPlan enter_job_cgroup(pid_t pid, sandbox::Mode level, const Limits& effective);

}  // namespace wj
