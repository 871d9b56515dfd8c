// Subcommands of the wasmjail binary. Each returns the process exit code.
#pragma once

#include <string>
#include <vector>

namespace wj::cli {

int run(int argc, char** argv);   // wasmjail run ...
int exec(int argc, char** argv);  // wasmjail exec JOB_FILE ...
int serve(int argc, char** argv); // wasmjail serve ...
int run(int argc, char** argv);     // wasmjail run ...
int worker(int argc, char** argv);  // wasmjail worker ...
int submit(int argc, char** argv);  // wasmjail submit ...
int policy(int argc, char** argv);  // wasmjail policy check|show ...
int version(int argc, char** argv); // wasmjail --version [--json]
int doctor(int argc, char** argv);  // wasmjail doctor

// Where policies are looked up by name: the operator's folders (--policy-dir, then
// $WASMJAIL_POLICY_PATH), then the installed /etc/wasmjail/policies, then (development) the
// source tree's configs/policies when the binary runs from its build folder.
std::vector<std::string> policy_dirs(const std::vector<std::string>& operator_dirs);
std::string shipped_policy_dir();

// Exit codes shared by subcommands.
constexpr int kExitUsage = 2;      // bad command line, unreadable or invalid module
constexpr int kExitTrap = 134;     // the guest trapped (like SIGABRT in a native process)
constexpr int kExitTimeout = 124;  // wall-time limit (as timeout(1))
constexpr int kExitStopped = 125;  // stopped by wasmjail for any other reason

}  // namespace wj::cli
