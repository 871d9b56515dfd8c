// Policy: what an operator allows one job to do, read from one YAML file per policy
// (configs/policies/*.yaml), resolved through `extends`, validated fail-closed.
//
// Every limit is optional: unset means "no limit from this policy". A child policy
// overrides its parent key by key; see README.md ("Policies") for the schema.
#pragma once

#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policies/config_util.h"

namespace wj {

// Resource limits. Durations in milliseconds, sizes in bytes. Also the shape of a job's
// own `limits:` section, which may only ask for less than its policy allows.
struct Limits {
  std::optional<double> wall_time_ms;
  std::optional<double> cpu_time_ms;
  std::optional<uint64_t> memory;       // the whole job (address space / cgroup)
  std::optional<uint64_t> wasm_memory;  // each linear memory; a multiple of 64KiB
  std::optional<uint64_t> stdout_bytes;
  std::optional<uint64_t> stderr_bytes;
  std::optional<uint64_t> output_bytes;  // everything the job writes, together (apparent size)
  std::optional<uint64_t> output_files;  // files, folders and links the job creates
  std::optional<uint64_t> open_files;
  std::optional<uint64_t> module_bytes;
  std::optional<uint64_t> stdin_bytes;  // a job spec's `stdin` (run streams its own, unbounded)
  std::optional<uint64_t> processes;  // tasks (processes and threads) in the job's cgroup: pids.max
  std::optional<double> cpu_quota;    // CPU cores the job's cgroup may use (0.5: half a core)
};

enum class Isolation { kOff, kBestEffort, kRequired };
enum class Mechanism {
  kUserNamespace,
  kPidNamespace,
  kNetNamespace,
  kMountNamespace,
  kIpcNamespace,
  kUtsNamespace,
  kLandlock,
  kCgroup,
  kFilesystem  // at least one of mount_namespace and landlock (fail closed when required)
};
constexpr size_t kMechanismCount = 9;
std::string_view to_string(Mechanism m);  // "user_namespace"
std::string_view to_string(Isolation i);  // "best_effort"

// isolation.net_namespace_kind: a new network namespace per job process (per_job), or one
// empty namespace shared by the job processes of a fork server (shared_empty; safe because
// seccomp denies creating sockets). See README, "Policies" and "Performance".
enum class NetNamespaceKind { kPerJob, kSharedEmpty };
std::string_view to_string(NetNamespaceKind k);  // "per_job", "shared_empty"

struct IsolationSettings {
  std::array<std::optional<Isolation>, kMechanismCount> level;  // unset: required
  std::optional<NetNamespaceKind> net_namespace_kind;           // unset: per_job
  Isolation get(Mechanism m) const;
  NetNamespaceKind net_kind() const { return net_namespace_kind.value_or(NetNamespaceKind::kPerJob); }
};

struct SeccompAction {
  enum Kind { kKill, kTrap, kErrno, kLog } kind = kKill;
  int errno_value = 0;      // for kErrno
  std::string str() const;  // "kill", "errno:EPERM"
};

struct ArgCondition {
  enum Op { kEq, kNe, kLt, kLe, kGt, kGe, kMaskedEq } op = kEq;
  unsigned index = 0;  // 0..5
  uint64_t value = 0;
  uint64_t mask = 0;  // kMaskedEq only: (arg & mask) == value
};

struct SyscallRule {
  std::string name;
  int number = -1;
  std::vector<ArgCondition> args;  // all must hold; empty: any arguments
};

// The operator's adjustments on top of the sandbox's built-in baseline allowlist.
struct SeccompSettings {
  std::optional<SeccompAction> default_action;  // unset: kill
  std::vector<SyscallRule> allow;
  std::vector<std::string> kill;                    // always fatal
  std::vector<std::pair<std::string, int>> errno_;  // syscall -> errno value it answers
  SeccompAction action() const { return default_action.value_or(SeccompAction{}); }
};

enum class Tier { kLiftoff, kTurbofan, kTiered };
std::string_view to_string(Tier t);

// V8 10.2's switchable wasm features: policy name, V8 flag name, V8's default.
struct WasmFeature {
  std::string_view name, v8_name;
  bool v8_default;
};
const std::vector<WasmFeature>& wasm_features();
// The V8 flags a policy may set in wasm.v8_flags (V8 ignores unknown flags silently).
std::string v8_flag_allowlist();

struct WasmSettings {
  std::optional<Tier> tier;                   // unset: tiered
  std::vector<std::optional<bool>> features;  // parallel to wasm_features(); unset: V8's default
  std::vector<std::string> v8_flags;          // validated against the allowlist
  WasmSettings() : features(wasm_features().size()) {}
  bool feature(size_t i) const { return features[i].value_or(wasm_features()[i].v8_default); }
};

struct FetchSettings {
  std::optional<bool> url_download;                       // unset: false
  std::optional<std::vector<std::string>> allowed_hosts;  // "example.com", "*.example.com", "host:8443"
  std::optional<uint64_t> max_bytes;                      // per download
  std::optional<double> timeout_ms;                       // per download
};

struct OutputSettings {
  // What happens when a stream passes its limit (limits.stdout_bytes, ...): true keeps the
  // first bytes and marks the stream truncated; false fails the job.
  std::optional<bool> truncate;  // unset: true
};

struct Policy {
  std::string name;
  std::string description;
  std::vector<std::string> sources;  // the files it was resolved from, the policy's own first
  Limits limits;
  IsolationSettings isolation;
  SeccompSettings seccomp;
  WasmSettings wasm;
  FetchSettings fetch;
  OutputSettings output;
};

// Parses a `limits:` mapping (a policy's or a job's) with the policy rules. Throws
// cfg::ConfigError. `unlimited_keys`, if given, receives the keys set to `unlimited`.
Limits parse_limits(const YAML::Node& n, const cfg::Doc& doc,
                    std::vector<std::string>* unlimited_keys = nullptr);

// Loads a policy by name (looked up as <dir>/<name>.yaml in `search_dirs`, in order) or by
// path (anything with a '/' or ending in .yaml/.yml/.json), and resolves its `extends`.
cfg::Expected<Policy> load_policy(const std::string& name_or_path,
                                  const std::vector<std::string>& search_dirs);
// Parses and resolves one policy given as text; `extends` is looked up in `search_dirs`
// (relative paths against `file`'s folder). With kRefuse, `extends` is an error and no
// other file is read (text that must stand alone; the fuzzer).
enum class Extends { kFollow, kRefuse };
cfg::Expected<Policy> parse_policy(const std::string& text, const std::string& file,
                                   const std::vector<std::string>& search_dirs,
                                   Extends mode = Extends::kFollow);

// The search folders: `extra` (the operator's --policy-dir), then WASMJAIL_POLICY_PATH
// (colon-separated), then `shipped`.
std::vector<std::string> policy_search_dirs(const std::vector<std::string>& extra,
                                            const std::string& shipped);

// The fully resolved policy as YAML: every field, defaults made explicit. It parses back
// to the same policy.
std::string to_yaml(const Policy& p);

// nullopt when every limit `asked` sets is within `allowed`; else which limit is over:
// "job asks for limits.memory 1GiB but the policy allows at most 256MiB".
std::optional<std::string> check_job_limits(const Limits& asked, const Limits& allowed);
// The job's value where it gives one, else the policy's.
Limits effective_limits(const Limits& asked, const Limits& allowed);

// tier, features and v8_flags -> the V8 flag strings to set before V8 starts.
std::vector<std::string> v8_flags_for(const WasmSettings& w);

}  // namespace wj
