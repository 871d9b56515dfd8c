// Cgroups: each job in a cgroup of its own, so that the kernel enforces its memory,
// processes (threads included) and CPU share, and reports its peak memory, CPU time and
// whether its OOM killer struck. Both layouts are supported, detected at start:
//   v2 (unified, e.g. systemd with Delegate=yes): per-job leaves in the delegated subtree
//      the server runs in (it moves itself into a leaf of its own first, as v2's "no
//      internal processes" rule requires), or in $WASMJAIL_CGROUP_ROOT;
//   v1 (one hierarchy per controller): a `wasmjail` folder under each controller used
//      (memory, pids, cpu, cpuacct), per-job folders beneath.
// A job's cgroup is named "<server pid>-<server start time>-<sequence>", so parallel
// servers never collide and the folders of a server that died can be told from those of
// a live one (remove_stale_cgroups).
//
// Unlike the other mechanisms this one is applied by the supervisor, not the child: the
// job process enters its cgroup (CLONE_INTO_CGROUP on v2, else its pid written to
// cgroup.procs) before it is let run any job code.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace wj::sandbox {

enum class CgroupVersion { kNone = 0, kV1 = 1, kV2 = 2 };
const char* cgroup_version_name(CgroupVersion v);  // "none", "v1", "v2"

// What the policy asks of a job's cgroup; each unset limit leaves the controller alone.
struct CgroupLimits {
  std::optional<uint64_t> memory_bytes;  // memory.max / memory.limit_in_bytes; swap off where possible
  std::optional<uint64_t> processes;     // pids.max (threads count)
  std::optional<double> cpu_cores;       // cpu.max / cpu.cfs_quota_us over a 100 ms period
};

// What the cgroup saw of the job, read after it ended (before the folders go).
struct CgroupUsage {
  bool oom_killed = false;                    // the cgroup's OOM killer killed a task of the job
  bool processes_hit = false;                 // a clone or fork was refused by pids.max
  std::optional<uint64_t> peak_memory_bytes;  // memory.peak / memory.max_usage_in_bytes
  std::optional<uint64_t> cpu_ns;             // cpu.stat usage_usec / cpuacct.usage
};

// Where this host keeps cgroups (detect_cgroups, once per process).
struct CgroupHost {
  CgroupVersion version = CgroupVersion::kNone;
  std::string unavailable;  // why there is none (version kNone)
  // v2: the folder job leaves are created in, and the controllers enabled for them.
  std::string v2_base;
  std::vector<std::string> v2_controllers;
  bool clone_into_cgroup = false;  // v2 and the kernel has clone3(CLONE_INTO_CGROUP)
  // v1: controller -> its `wasmjail` folder (co-mounted controllers share one folder).
  std::map<std::string, std::string> v1_base;
  // Tests only: a plain folder tree standing in for a v2 cgroupfs. A new leaf gets the
  // interface files the kernel would create, and removing it deletes them first.
  bool fake_tree = false;

  bool has(const std::string& controller) const;  // usable for per-job limits
  std::string describe() const;                   // "v1 (memory, pids, cpu, cpuacct)"
};

// Detects the layout: $WASMJAIL_CGROUP_ROOT (a cgroup2 folder) if set; else v1 when a v1
// hierarchy holds memory, pids or cpu (the hybrid layout, whatever cgroup2 is mounted
// beside it); else the cgroup2 hierarchy this process runs in. Prepares the bases (the
// `wasmjail` folders on v1; on v2 the controllers enabled in the base's subtree_control,
// moving this process and its direct children into a leaf first when the base is our own
// cgroup and holds nobody else). Never throws; `unavailable` says why not.
CgroupHost detect_cgroups();
// The v2 protocol against `base` (tests: a folder tree laid out like a v2 subtree).
CgroupHost cgroup_host_v2(const std::string& base, bool move_self, bool fake_tree = false);

// "<pid>-<start time>-<seq>": unique to this process (its start time tells it from a
// later process with a recycled pid) and job.
std::string job_cgroup_name(uint64_t seq);

// Removes the job cgroups of servers that are gone (crashed): folders named like
// job_cgroup_name whose owner pid is not alive with that start time. Stragglers in them are
// killed first. Folders of live servers (this one included) are left alone. Returns how
// many were removed.
size_t remove_stale_cgroups(const CgroupHost& host);

// One job's cgroup (one folder on v2, one per controller hierarchy on v1). Removed (with
// anything still in it killed) by remove() or the destructor.
class JobCgroup {
 public:
  // Creates the folder(s) and writes the limits. A limit whose controller this host lacks
  // is an error naming it, as is any failed write (the caller decides what the policy's
  // level makes of it); nothing is left behind on failure.
  static std::unique_ptr<JobCgroup> create(const CgroupHost& host, const std::string& name,
                                           const CgroupLimits& limits, std::string* error);
  ~JobCgroup();
  JobCgroup(const JobCgroup&) = delete;
  JobCgroup& operator=(const JobCgroup&) = delete;

  // Moves `pid` (a whole process) into the cgroup: cgroup.procs of each folder.
  std::optional<std::string> join(pid_t pid);
  // v2: a directory fd for clone3's CLONE_INTO_CGROUP (-1 on v1 or when the kernel lacks it).
  int clone_fd() const { return clone_fd_; }
  // Reads the counters (call once the job ended, before remove()).
  CgroupUsage usage() const;
  // Kills whatever is still inside (cgroup.kill on v2, SIGKILL to each listed pid on v1),
  // then removes the folder(s). Idempotent; a folder that will not go is reported.
  std::optional<std::string> remove();

  CgroupVersion version() const { return version_; }
  const std::vector<std::string>& paths() const { return paths_; }  // every folder, for tests
  // The folder holding `controller`'s files ("" when none).
  std::string path_of(const std::string& controller) const;

 private:
  JobCgroup() = default;
  CgroupVersion version_ = CgroupVersion::kNone;
  bool fake_tree_ = false;
  std::vector<std::string> paths_;  // distinct folders, creation order
  std::map<std::string, std::string> by_controller_;
  int clone_fd_ = -1;
  bool removed_ = false;
};

// Writes `pid` into a cgroup.procs file (also used for the server's own move on v2).
std::optional<std::string> write_cgroup_file(const std::string& path, const std::string& value);

// clone3(CLONE_INTO_CGROUP) with SIGCHLD and `flags`, behaving like fork(); -1 with errno
// on failure (ENOSYS, E2BIG: a kernel without it; the caller falls back).
long clone_into_cgroup(unsigned long flags, int cgroup_fd);

}  // namespace wj::sandbox
