// Result: the one value every job ends as, whatever the frontend (CLI, files, API).
// Its status is set once, by the supervisor, from what it observed of the child; the
// child's own record is only evidence (validated, never trusted as-is).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace wj {

enum class Status {
  kOk,             // the entry point returned, or the guest called proc_exit
  kTrap,           // a wasm trap (unreachable, out-of-bounds, stack exhausted, ...)
  kTimeout,        // wall-time limit
  kCpuLimit,       // CPU-time limit
  kMemoryLimit,    // memory limit
  kViolation,      // the child made a syscall its seccomp policy forbids
  kCrashed,        // the child died without a valid record
  kSetupError,     // the sandbox could not be set up as the policy requires
  kInvalidJob,     // the job (spec, module bytes, imports, entry point) is unusable
  kCancelled,      // cancelled by the caller
  kInternalError,  // a bug or resource failure in wasmjail itself
};

std::string_view to_string(Status s);
std::optional<Status> status_from_string(std::string_view s);

struct CapturedStream {
  std::string data;        // kept up to the cap
  bool truncated = false;  // more was produced than was kept
  uint64_t total_bytes = 0;
};

struct TrapInfo {
  std::string message;
  std::vector<std::string> backtrace;  // innermost first: "name (wasm-function[i]:0xoff)"
};

struct ViolationInfo {
  std::string syscall;  // name, or "unknown"
  int64_t number = -1;
};

// Which sandbox mechanisms this job ran under (names as in sandbox::mechanism_name), and
// the best_effort ones this kernel or these privileges refused.
struct SandboxInfo {
  std::vector<std::string> applied;
  std::vector<std::string> skipped;
  std::string cgroup_version;  // "v1", "v2", "none"; empty when the policy turns cgroup off
};

struct Timings {  // milliseconds
  double total = 0, queue = 0, startup = 0, compile = 0, instantiate = 0, run = 0;
};

struct Usage {
  double cpu_ms = 0;
  uint64_t peak_rss_bytes = 0;
  uint64_t peak_wasm_memory_bytes = 0;
  std::optional<uint64_t> cgroup_peak_memory_bytes;  // the job's cgroup: memory.peak / max_usage_in_bytes
  std::optional<double> cgroup_cpu_ms;               // the job's cgroup: every task's CPU time
};

struct Result {
  Status status = Status::kInternalError;
  // The guest's: 0 when the entry point returns; proc_exit's status as WASI defines it, an
  // unsigned 32-bit value (0..4294967295, so proc_exit(-1) is 4294967295); -1 only when the
  // guest never ran to an end (never ambiguous with a proc_exit status).
  int64_t exit_code = -1;
  std::string error;       // what went wrong, for a person; empty when ok
  CapturedStream out, err;
  std::optional<TrapInfo> trap;
  std::optional<ViolationInfo> violation;
  std::optional<SandboxInfo> sandbox;  // set once the child reported its lock-down
  Timings timing;
  Usage usage;
  // "hit", "miss" (compiled; code stored), "compiling" (a cold module of 256 KiB or more:
  // ran on Liftoff with tier-up while a second child compiles its code), or "" (no cache)
  std::string code_cache;
  // Answered at the result record (serve): usage.cpu_ms and usage.peak_rss_bytes are 0 here
  // and arrive at the reap (the stored record, /metrics). Not rendered.
  bool usage_pending = false;
  // On a hit: how many of the module's functions the cached code has optimized (TurboFan):
  // all of them for a full compile, the recorded hot set for a tiered job's hot-code entry.
  uint32_t code_cache_optimized = 0;
  // The code the entry module started on: "turbofan" (eager, or from the cache), "tiered"
  // (Liftoff, hot functions tier up), "liftoff"; "" when no child ran.
  std::string tier;
};

nlohmann::ordered_json to_json(const Result& r);
// The result's "publishing" member for outputs a job asked to have published (output name ->
// the StorageSource or Publisher it named): {"published": false, "reason", "requested"}.
nlohmann::ordered_json publishing_json(const std::vector<std::pair<std::string, std::string>>& requested);
// Serialized JSON; invalid UTF-8 in guest output becomes U+FFFD instead of failing.
std::string to_json_text(const Result& r, int indent = -1);

}  // namespace wj
