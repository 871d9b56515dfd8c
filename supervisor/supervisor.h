// Supervisor: starts one sandboxed child per job on a libuv loop, streams its output,
// watches it, and classifies how it ended into a Result. The only place with a loop.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>

#include "policies/job.h"
#include "supervisor/result.h"

namespace wj {

struct Running;  // one live job (supervisor.cc)

enum class Stream { kStdout = 1, kStderr = 2 };

// Limits for one job, already resolved (policy, then what the job asked for). Unset: none.
struct JobLimits {
  std::optional<double> wall_time_ms;
  std::optional<double> cpu_time_ms;
  std::optional<uint64_t> memory_bytes;       // the job as a whole
  std::optional<uint64_t> wasm_memory_bytes;  // each linear memory
  std::optional<uint64_t> output_bytes;       // all files the job writes, together
};

struct RunOptions {
  JobLimits limits;
  size_t stdout_cap = 1u << 20;  // bytes of each stream kept in the Result; more sets *_truncated
  size_t stderr_cap = 1u << 20;
  size_t module_bytes_max = 256u << 20;
  bool stdio_is_tty[3] = {false, false, false};
  // Called for each chunk of guest output as it arrives (before the job ends).
  std::function<void(Stream, const char*, size_t)> on_output;
  // Called once the child exists, with its pid (for monitoring and tests).
  std::function<void(pid_t)> on_spawn;
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

  // Starts `job`; `done` runs on the loop exactly once, with the final Result.
  std::shared_ptr<JobControl> start(const Job& job, RunOptions opts, std::function<void(Result)> done);

 private:
  uv_loop_t* loop_;
};

// Convenience for one-shot frontends: runs `job` on a private loop until it ends.
Result run_job(const Job& job, RunOptions opts);

}  // namespace wj
