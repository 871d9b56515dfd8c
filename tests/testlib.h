// Test helpers: run the wasmjail binary as a user would and capture what it did.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace wjt {

struct ProcResult {
  int exit_code = -1;  // 128+N when killed by signal N
  std::string out, err;
  std::string warnings;  // "wasmjail: warning: ..." lines, taken out of err
};

std::string binary();                       // path of build/wasmjail
std::string guest(const std::string& name);  // path of build/guests/NAME.wasm

// Runs argv[0] with argv, the given extra environment on top of this process's, and
// stdin from /dev/null; waits for it (killing it after `timeout_s`). Unless either names
// it, WASMJAIL_BACKGROUND_COMPILE=wait: a `run` or `exec` leaves no compile running.
ProcResult run(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env = {},
               int timeout_s = 60);

// The same with stdin from `stdin_fd` (-1: /dev/null, -2: closed).
ProcResult run_with_stdin(const std::vector<std::string>& argv, int stdin_fd,
                          const std::vector<std::string>& extra_env = {}, int timeout_s = 60);

// Starts a process with its stdout on a pipe; returns pid and sets *out_fd.
pid_t spawn(const std::vector<std::string>& argv, int* out_fd);

// The job processes among the children of wasmjail process `pid` (its fork server, named
// "wasmjail-zygote", is left out), and that fork server (-1 when none runs).
std::vector<pid_t> job_children(pid_t pid);
// The warm pooled processes (still waiting for a job) among `pid`'s children.
std::vector<pid_t> warm_children(pid_t pid);
// Whether `needle` is anywhere in the memory `pid` can have written (anonymous mappings,
// heap, stack, writable file mappings), read through /proc/PID/mem (the tests run as root).
bool memory_contains(pid_t pid, const std::string& needle);
pid_t zygote_of(pid_t pid);

std::string temp_dir();  // a fresh directory under $TMPDIR
// A temp_dir() removed with everything in it when this goes out of scope.
struct TempDir {
  std::string path = temp_dir();
  TempDir() = default;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
};
void write_file(const std::string& path, const std::string& data);
std::string read_file(const std::string& path);  // whole file, "" when unreadable
// `module` with a custom section of `pad` bytes appended, written into `dir`: the same code
// in a module over the 8 MiB up to which run and exec compile all of it on TurboFan.
std::string padded_module(const std::string& dir, const std::string& module, size_t pad);

// Appends one HTTP response an API test received to WJ_API_RECORD_DIR/<test program>.ndjson
// (truncated at the first record of each run); tests/openapi_check.py validates every one
// against server/openapi.json (the ctest `openapi_contract`).
void record_api_response(const std::string& method, const std::string& path, long status,
                         const std::string& content_type, const std::string& body);

}  // namespace wjt
