// Supervisor: starts one sandboxed child per job on a libuv loop, streams its output,
// watches it, and classifies how it ended into a Result. The only place with a loop.
#pragma once

#include <uv.h>

#include <cstddef>
#include <functional>
#include <memory>

#include "policies/job.h"
#include "sandbox/sandbox_spec.h"
#include "supervisor/result.h"

namespace wj {

enum class Stream { kStdout = 1, kStderr = 2 };

struct RunOptions {
  size_t stdout_cap = 1u << 20;  // bytes of each stream kept in the Result; more sets *_truncated
  size_t stderr_cap = 1u << 20;
  size_t module_bytes_max = 256u << 20;
  bool stdio_is_tty[3] = {false, false, false};
  // How the child is locked down (namespaces, Landlock, rlimits, seccomp). Its `preopens`
  // are filled from the job's dirs by the supervisor.
  sandbox::SandboxSpec sandbox;
  // Called for each chunk of guest output as it arrives (before the job ends).
  std::function<void(Stream, const char*, size_t)> on_output;
};

class Supervisor {
 public:
  explicit Supervisor(uv_loop_t* loop);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Starts `job`; `done` runs on the loop exactly once, with the final Result.
  void start(const Job& job, RunOptions opts, std::function<void(Result)> done);

  struct Running;  // one live job (supervisor.cc)

 private:
  uv_loop_t* loop_;
};

// Convenience for one-shot frontends: runs `job` on a private loop until it ends.
Result run_job(const Job& job, RunOptions opts);

}  // namespace wj
