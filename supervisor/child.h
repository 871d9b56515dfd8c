// The child side of a job, after fork(): lock down, run the module, send the record.
// Never returns: it _exit()s, so nothing of the supervisor (atexit, libuv) runs here.
#pragma once

#include <sys/types.h>

#include <cstdint>
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
  const sandbox::SandboxSpec* sandbox = nullptr;  // nullptr: the defaults (a strong policy)
  sandbox::CloneResult clone;                      // how this child was created (namespaces)
};

[[noreturn]] void child_main(const ChildSetup& setup);

}  // namespace wj
