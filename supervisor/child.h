// The child side of a job, after fork(): lock down, run the module, send the record.
// Never returns: it _exit()s, so nothing of the supervisor (atexit, libuv) runs here.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "policies/job.h"
#include "sandbox/lockdown.h"

namespace wj {

// The fd layout the child sets up before locking down.
constexpr int kChildStdout = 1, kChildStderr = 2, kChildRecord = 3, kChildFirstPreopen = 4;

struct ChildSetup {
  const Job* job;
  const std::vector<uint8_t>* module;
  pid_t supervisor_pid;
  int stdout_w, stderr_w, record_w;
  std::vector<int> preopen_fds;  // parallel to job->dirs
  bool stdio_is_tty[3];
  uint64_t wall_deadline_ns;  // CLOCK_MONOTONIC; 0 = none
  double cpu_limit_ms;        // 0 = none
  uint64_t memory_bytes;      // 0 = none
  uint64_t wasm_memory_bytes; // 0 = none
  uint64_t output_bytes;      // 0 = none
  const std::vector<std::string>* v8_flags;  // validated by the policy parser
  const std::vector<uint8_t>* cached_code;   // from the code cache, or null
  bool offer_code;                           // send freshly compiled code (first frame)
  const sandbox::SandboxSpec* sandbox = nullptr;  // nullptr: the defaults (a strong policy)
  sandbox::CloneResult clone;                      // how this child was created (namespaces)
  const sandbox::SeccompProgram* seccomp_program = nullptr;  // compiled ahead by the fork server
  bool compile_only = false;  // compile the entry module for the cache; run no guest code
  bool warm = false;          // a warm pooled process: sandbox::prepare_warm already ran
  int stdin_fd = -1;          // becomes the guest's fd 0; -1: end of file (/dev/null)
  uint64_t output_files = 0;  // entries the guest may create; 0 = none
  bool report_hot = false;    // send the functions V8 optimized (wire kHotFunctions) at the end
  const std::vector<uint32_t>* hot_functions = nullptr;  // compile_only: these on TurboFan
};

[[noreturn]] void child_main(const ChildSetup& setup);

}  // namespace wj
