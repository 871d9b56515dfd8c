// Supervisor: starts one sandboxed child per job on a libuv loop, streams its output,
// watches it, and classifies how it ended into a Result. The only place with a loop.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "policies/job.h"
#include "policies/policy.h"
#include "sandbox/sandbox_spec.h"
#include "supervisor/result.h"

namespace wj {

struct Running;  // one live job (supervisor.cc)
class WarmPool;   // supervisor/warm_pool.h

enum class Stream { kStdout = 1, kStderr = 2 };

struct RunOptions {
  // Bytes of each stream kept in the Result (more sets *_truncated), and the largest module
  // read, when the effective limits (policy, then job) set none.
  size_t stdout_cap = 1u << 20;
  size_t stderr_cap = 1u << 20;
  // At most this much of each stream is kept in memory, whatever the caps (a frontend that
  // streams output to its consumer, like `run`, needs only a little in the Result).
  size_t keep_max = SIZE_MAX;
  size_t module_bytes_max = 256u << 20;
  bool stdio_is_tty[3] = {false, false, false};
  // Set before V8 starts in the child (from the policy: v8_flags_for(policy->wasm)).
  std::vector<std::string> v8_flags;
  // The resolved policy the job runs under; the sandbox and limits read it from here.
  std::shared_ptr<const Policy> policy;
  // What the job itself asks for; more than the policy allows fails it as invalid_job.
  Limits job_limits;
  // How the child is locked down (namespaces, Landlock, rlimits, seccomp). Its `preopens`
  // are filled from the job's dirs by the supervisor.
  sandbox::SandboxSpec sandbox;
  // Called for each chunk of guest output as it arrives (before the job ends).
  std::function<void(Stream, const char*, size_t)> on_output;
  // [1] stdout, [2] stderr: when set (a pipe of the caller's, e.g. `run`'s own stdout), that
  // stream is relayed into it with splice(2), without passing through this process's memory:
  // its bytes are counted against the caps (output.truncate: false still fails the job) but
  // neither kept in the Result nor passed to on_output.
  int splice_to[3] = {-1, -1, -1};
  // Compiled-code cache folder (empty: no cache). Used for the TurboFan tier, whose code is
  // complete at compile time; see supervisor/code_cache.h.
  std::string cache_dir;
  uint64_t cache_max_bytes = 1ull << 30;
  // A cache miss for an entry module of at least this many bytes (0: never; serve sets
  // 256 KiB, see CodeCache::background_compile_min): the job runs
  // on Liftoff with dynamic tier-up at once, and a second child, which never runs guest
  // code, compiles the TurboFan code for the cache (eager TurboFan of a large module takes
  // seconds; Liftoff a fraction). Later jobs get the TurboFan code from the cache.
  size_t background_compile_min_bytes = 0;
  // A job under the `tiered` policy tier never offers its own code (Liftoff code is not what
  // the cache keeps, and tiered-up code exists only after guest code ran). On a miss, when
  // this is set and the module is at most background_compile_max_bytes, the same second
  // child compiles the module's TurboFan code for the cache; later jobs start on it.
  bool background_compile = false;
  size_t background_compile_max_bytes = SIZE_MAX;
  // One-shot frontends (run, exec): the second child is killed when the job ends, so it
  // never delays the exit; a job that runs longer than the compile leaves the code behind.
  bool background_ends_with_job = false;
  // One-shot frontends (run, exec) by default: a hot-code compile (compile_hot) is not run in
  // this process while the job runs; once the job ended, its final hot set goes to a detached
  // process (supervisor/detached_compile.h) and the caller does not wait for it.
  bool detach_hot_compile = false;
  // Internal, with detach_hot_compile: the file the job's module was read from (see
  // HotCompileRequest::module_file).
  std::string detach_module_file;
  // Internal: this job is that second child (compile the entry module, run nothing).
  bool compile_only = false;
  // Internal, with compile_only: a hot-code compile. These declared functions (ascending)
  // are compiled with TurboFan, the rest left lazy, for the `tiered` jobs of this module.
  std::vector<uint32_t> hot_functions;
  // A readable fd the guest's fd 0 reads from as a stream (`run` passes a pipe it fills from
  // its own stdin). The supervisor owns it from start() on and closes it once the child has
  // it. -1: the job's stdin_data if set, else end of file.
  int stdin_fd = -1;
  // Called once the child exists, with its pid (for monitoring and tests).
  std::function<void(pid_t)> on_spawn;
  // Answer at the result record (serve): `done` runs as soon as the child's final record
  // and all its output arrived, before its process exit is reaped; usage.cpu_ms and
  // usage.peak_rss_bytes (known only at the reap, from rusage) are 0 in that Result and
  // come later through on_reaped, which always follows such an early answer.
  bool answer_at_record = false;
  std::function<void(const Usage&)> on_reaped;
  // Other threads of this process may be inside malloc (sources being fetched): a direct
  // clone, which skips glibc's fork handlers, could deadlock. Only the fork server may
  // create the job process; if it cannot, the job fails (internal_error) instead.
  bool no_direct_clone = false;
  // Internal: the retry of a job that crashed while running code from the cache (its entry
  // is evicted; the retry neither reads nor fills the cache).
  bool cache_retry = false;
};

// A handle on a started job: cancel it while it runs. Safe to use after the job ended.
class JobControl {
 public:
  // Kills the child; the job ends with status `cancelled` (unless it already ended).
  void cancel();
  bool done() const { return running_ == nullptr; }

 private:
  friend class Supervisor;
  friend struct Running;
  Running* running_ = nullptr;
};

class Supervisor {
 public:
  explicit Supervisor(uv_loop_t* loop);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Starts `job`; `done` runs on the loop exactly once, with the final Result. A job moved in
  // gives up its module_bytes without a copy (a copy counts in the child's memory: it is cloned
  // from this process).
  std::shared_ptr<JobControl> start(Job job, RunOptions opts, std::function<void(Result)> done);
  // start() with an existing control (the retry of a job keeps its caller's handle).
  void start_with(Job job, RunOptions opts, std::function<void(Result)> done,
                  const std::shared_ptr<JobControl>& control);
  // Kills the background compiles in flight (a server shutting down); their code is lost.
  void cancel_background();
  // Whether `job` can be created by the fork server (one runs and the job's folders fit in
  // one request), so that no direct clone of this process is needed.
  static bool spawns_via_fork_server(const Job& job);
  // Background compiles in flight (for /metrics).
  size_t background_compiles() const { return compiling_->size(); }
  // Warm job processes kept per policy (serve: the concurrency; 0: none). See warm_pool.h.
  void set_warm_pool_size(size_t n);
  // Stops refilling the warm pool and kills its idle processes (a server shutting down).
  void shutdown_warm_pool();
  size_t warm_idle() const;

  // A tiered job ended having optimized `hot`: when that adds functions to the module's
  // hot-code entry (and no full TurboFan entry exists), a compile-only child compiles the
  // union on TurboFan for the cache (see RunOptions::hot_functions). With
  // opts.detach_hot_compile that is left to a detached process (detached_compile.h), which
  // calls this again without it. When `module` is the only reference, its bytes are moved
  // into the compile rather than copied.
  void compile_hot(const Job& job, std::shared_ptr<const std::vector<uint8_t>> module, const RunOptions& opts,
                   const std::string& hot_key, const std::string& full_key, std::vector<uint32_t> hot);

 private:
  // Starts the compile-only sibling of a cold, large job (see background_compile_min_bytes).
  std::shared_ptr<JobControl> compile_in_background(const Job& job, const std::vector<uint8_t>& module,
                                                    const RunOptions& opts, const std::string& key);
  // Background compiles run beside the jobs, outside any concurrency limit: at most this
  // many at once (further distinct cold modules are compiled eagerly by their own jobs).
  static constexpr size_t kMaxBackgroundCompiles = 2;
  uv_loop_t* loop_;
  std::unique_ptr<WarmPool> pool_;
  // WASMJAIL_POOL=on (tests): even a one-shot job runs in a warm process, made for it.
  bool warm_for_one_shot_ = false;
  // Background compiles in flight, by cache key (shared with their done callbacks).
  using Compiling = std::map<std::string, std::shared_ptr<JobControl>>;
  std::shared_ptr<Compiling> compiling_ = std::make_shared<Compiling>();
  // Cache keys whose background compile failed: not tried again by this supervisor.
  std::shared_ptr<std::set<std::string>> compile_failed_ = std::make_shared<std::set<std::string>>();
};

// Convenience for one-shot frontends: runs `job` on a private loop until it ends.
Result run_job(const Job& job, RunOptions opts);

}  // namespace wj
