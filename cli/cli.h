// Subcommands of the wasmjail binary. Each returns the process exit code.
#pragma once

#include <optional>
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

// A job file's text for exec and submit: JOB_FILE, or standard input for "-", at most 16 MiB
// (an oversized file is refused, not loaded). `name` is what errors call it ("<stdin>" or the
// path), `base_dir` what its relative source paths are relative to. The error otherwise.
struct JobText {
  std::string text, name, base_dir;
};
std::optional<JobText> read_job_text(const std::string& job_file, std::string* error);

// Exit codes shared by subcommands.
constexpr int kExitUsage = 2;      // bad command line, unreadable or invalid module
constexpr int kExitTrap = 134;     // the guest trapped (like SIGABRT in a native process)
constexpr int kExitTimeout = 124;  // wall-time limit (as timeout(1))
constexpr int kExitStopped = 125;  // stopped by wasmjail for any other reason

}  // namespace wj::cli
