// Job: the plain description of one job that every frontend produces and the supervisor
// consumes. (The job-spec issue fills it from JobSpecWasm YAML/JSON; `run` from argv.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace wj {

struct DirMount {
  std::string host_path;
  std::string guest_path;
  bool read_only = false;
  // The folder already opened by storage/ (kept open by whoever prepared the job), or -1:
  // then the supervisor opens host_path (folders the local user named with `run --dir`).
  int host_fd = -1;
};

// A library module the entry module links against, already fetched.
struct ModuleBlob {
  std::string name;
  std::vector<std::string> aliases;
  std::vector<uint8_t> bytes;
};

struct Job {
  std::string module_path;  // where the entry module is read from (for messages too)
  // Already-fetched entry module bytes (exec); when empty, module_path is read (run).
  std::optional<std::vector<uint8_t>> module_bytes;
  std::vector<ModuleBlob> libraries;  // instantiated in order before the entry module
  std::string entry_point = "_start";
  std::vector<std::string> argv;  // argv[0] first
  std::vector<std::pair<std::string, std::string>> env;
  std::vector<DirMount> dirs;
  // What the guest reads on fd 0 (exec and the API: the job spec's `stdin`). Unset, and no
  // RunOptions::stdin_fd: fd 0 reads as end of file.
  std::optional<std::string> stdin_data;
};

// "KEY=VALUE" -> pair. Rejects empty keys, NUL bytes, and a missing '='.
// Returns nullopt and sets `error` on bad input.
std::optional<std::pair<std::string, std::string>> parse_env_assignment(const std::string& s,
                                                                         std::string* error);
// "HOST::GUEST" or "HOST::GUEST:ro" (or "HOST" alone: same path in the guest).
std::optional<DirMount> parse_dir_mapping(const std::string& s, std::string* error);
// Checks an environment entry: non-empty key without '=' or NUL, value without NUL.
std::optional<std::string> check_env_entry(const std::string& key, const std::string& value);

}  // namespace wj
