// SandboxSpec: the plain input of the sandbox, independent of how a policy is written.
// The policy layer maps its parsed Policy onto it; the defaults are a strong policy
// (every namespace and Landlock best_effort, seccomp default action trap), so a caller
// that sets nothing still gets a locked-down child.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wj::sandbox {

// How much a mechanism matters to this job.
//   required:    if the kernel or our privileges refuse it, the job ends `setup_error`.
//   best_effort: applied when possible; the result lists which mechanisms were applied.
//   off:         not attempted.
enum class Mode { kRequired, kBestEffort, kOff };

// Mechanisms whose availability depends on the kernel or on privileges. Bit positions
// are used on the wire (supervisor/wire.h) and in tests: never renumber.
enum class Mechanism : unsigned {
  kUserNs = 0,
  kPidNs = 1,
  kNetNs = 2,
  kIpcNs = 3,
  kUtsNs = 4,
  kMountNs = 5,  // includes the pivot into an empty root holding only the job's mounts
  kLandlock = 6,
  kSeccomp = 7,
  kCapabilities = 8,
  kRlimits = 9,
  kCgroup = 10,  // applied by the supervisor (sandbox/cgroup.h); never in the child's record
};
constexpr unsigned kMechanismCount = 11;
const char* mechanism_name(Mechanism m);  // "user_ns", "landlock", ...
constexpr uint32_t bit(Mechanism m) {
  return 1u << static_cast<unsigned>(m);
}

// An argument condition on an extra allowed syscall, as in seccomp_rule_add: the
// argument at `index` (0..5), compared with `op` against `value` (and `mask` for
// kMaskedEq: (arg & mask) == value).
struct ArgCondition {
  enum class Op { kEq, kNe, kLt, kLe, kGt, kGe, kMaskedEq };
  unsigned index = 0;
  Op op = Op::kEq;
  uint64_t value = 0;
  uint64_t mask = 0;
};

struct SyscallRule {
  std::string name;                      // resolved with libseccomp; unknown names are errors
  std::vector<ArgCondition> conditions;  // all must hold (empty: any arguments)
};

struct ErrnoRule {
  std::string name;
  int err = 1;  // EPERM unless told
};

struct SeccompSpec {
  Mode mode = Mode::kRequired;  // a seccomp-less child is never run unless the policy says off
  // What happens to a syscall outside the allowlist.
  //   kTrap:  SIGSYS; the handler reports {syscall, number} and the job is `violation`.
  //   kKill:  the kernel kills the process; the job is `violation` (syscall unknown).
  //   kErrno: the call fails with `default_errno`; the job goes on.
  //   kLog:   allowed and logged by the kernel's audit (for deriving an allowlist only).
  enum class DefaultAction { kTrap, kKill, kErrno, kLog };
  DefaultAction default_action = DefaultAction::kTrap;
  int default_errno = 1;           // EPERM
  std::vector<SyscallRule> allow;  // added to the built-in allowlist
  std::vector<std::string> kill;   // KILL_PROCESS, added to the built-in dangerous set
  std::vector<ErrnoRule> errno_rules;
};

struct RlimitSpec {
  // Each unset limit keeps the supervisor's value; RLIMIT_CORE is always 0.
  // RLIMIT_AS is deliberately absent: V8 reserves ~10 GiB of guard regions per wasm memory.
  std::optional<uint64_t> nofile = 64;         // open files (the guest's fds live here)
  std::optional<uint64_t> fsize = 1ull << 30;  // bytes one file may grow to
  std::optional<uint64_t> nproc;               // processes+threads of this uid (unset: shared uid)
  std::optional<uint64_t> data;                // bytes of heap/data (includes wasm memory)
  std::optional<uint64_t> stack = 8ull << 20;  // bytes of the main thread's stack
  std::optional<uint64_t> cpu_seconds;         // CPU time; SIGXCPU at soft, SIGKILL at hard
};

struct PreopenMount {
  std::string host_path;   // where the supervisor opened it
  std::string guest_path;  // where the guest sees it; also its place in the new root
  bool read_only = true;
};

// Which network namespace a job process gets (when net_ns is not off).
//   per_job:      a new one for every job process (clone with CLONE_NEWNET).
//   shared_empty: one namespace, empty but for a down loopback, created once by the fork
//                 server and shared by the job processes it creates (no per-job netns to
//                 build at clone or tear down at exit). Safe only while seccomp denies
//                 creating sockets (check_shared_net); a process that is not in such a
//                 namespace (a direct clone) gives the job its own, as per_job.
enum class NetNsKind : uint8_t { kPerJob = 0, kSharedEmpty = 1 };

struct SandboxSpec {
  Mode user_ns = Mode::kBestEffort;
  Mode pid_ns = Mode::kBestEffort;
  Mode net_ns = Mode::kBestEffort;
  NetNsKind net_ns_kind = NetNsKind::kPerJob;
  Mode ipc_ns = Mode::kBestEffort;
  Mode uts_ns = Mode::kBestEffort;
  Mode mount_ns = Mode::kBestEffort;
  Mode landlock = Mode::kBestEffort;
  // At least one of mount_ns and landlock must confine the filesystem: required ends the
  // job when neither could be applied (whatever their own modes); not a wire mechanism.
  Mode filesystem = Mode::kBestEffort;
  Mode capabilities = Mode::kRequired;  // dropping capabilities cannot fail for lack of privilege
  Mode cgroup = Mode::kBestEffort;      // the job's own cgroup (the supervisor's part, cgroup.h)
  SeccompSpec seccomp;
  RlimitSpec rlimits;
  std::vector<PreopenMount> preopens;  // parallel to the job's preopened fds (4, 5, ...)

  // Tests only: mechanisms to treat as unavailable on this kernel, as if it refused them
  // (bits of Mechanism). It can only make a run fail or apply less under best_effort;
  // it never loosens anything a `required` mode asks for. Settable from the environment
  // variable WASMJAIL_TEST_UNAVAILABLE (comma-separated mechanism names), read only by
  // the supervisor (sandbox::apply_test_unavailable).
  uint32_t simulate_unavailable = 0;
};

Mode mode_of(const SandboxSpec& s, Mechanism m);
const char* net_ns_kind_name(NetNsKind k);  // "per_job", "shared_empty"

// Parses WASMJAIL_TEST_UNAVAILABLE ("landlock,net_ns"); unknown names are errors.
std::optional<std::string> apply_test_unavailable(const char* value, SandboxSpec* spec);

}  // namespace wj::sandbox
