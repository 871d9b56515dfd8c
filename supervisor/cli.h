// Subcommands of the wasmjail binary. Each returns the process exit code.
#pragma once

namespace wj::cli {

int run(int argc, char** argv);   // wasmjail run ...
int exec(int argc, char** argv);  // wasmjail exec JOB_FILE ...

// Exit codes shared by subcommands.
constexpr int kExitUsage = 2;      // bad command line, unreadable or invalid module
constexpr int kExitTrap = 134;     // the guest trapped (like SIGABRT in a native process)
constexpr int kExitTimeout = 124;  // wall-time limit (as timeout(1))
constexpr int kExitStopped = 125;  // stopped by wasmjail for any other reason

}  // namespace wj::cli
