#include "supervisor/result.h"

#include <array>
#include <utility>

#include <nlohmann/json.hpp>

namespace wj {
namespace {
constexpr std::array<std::pair<Status, std::string_view>, 11> kNames{{
    {Status::kOk, "ok"},
    {Status::kTrap, "trap"},
    {Status::kTimeout, "timeout"},
    {Status::kCpuLimit, "cpu_limit"},
    {Status::kMemoryLimit, "memory_limit"},
    {Status::kViolation, "violation"},
    {Status::kCrashed, "crashed"},
    {Status::kSetupError, "setup_error"},
    {Status::kInvalidJob, "invalid_job"},
    {Status::kCancelled, "cancelled"},
    {Status::kInternalError, "internal_error"},
}};
}  // namespace

std::string_view to_string(Status s) {
  for (const auto& [st, name] : kNames)
    if (st == s) return name;
  return "internal_error";
}

std::optional<Status> status_from_string(std::string_view s) {
  for (const auto& [st, name] : kNames)
    if (name == s) return st;
  return std::nullopt;
}

nlohmann::ordered_json to_json(const Result& r) {
  nlohmann::ordered_json j;
  j["status"] = to_string(r.status);
  j["exit_code"] = r.exit_code;
  j["error"] = r.error;
  // Guest output is arbitrary bytes; JSON strings must be UTF-8, so invalid sequences
  // are replaced (U+FFFD) at render time rather than failing the whole result.
  j["stdout"] = r.out.data;
  j["stderr"] = r.err.data;
  j["stdout_truncated"] = r.out.truncated;
  j["stderr_truncated"] = r.err.truncated;
  if (r.trap) j["trap"] = {{"message", r.trap->message}, {"backtrace", r.trap->backtrace}};
  if (r.violation)
    j["violation"] = {{"syscall", r.violation->syscall}, {"number", r.violation->number}};
  if (r.sandbox) {
    j["sandbox"] = {{"applied", r.sandbox->applied}, {"skipped", r.sandbox->skipped}};
    if (!r.sandbox->cgroup_version.empty()) j["sandbox"]["cgroup_version"] = r.sandbox->cgroup_version;
  }
  j["timing_ms"] = {{"total", r.timing.total},     {"queue", r.timing.queue},
                    {"startup", r.timing.startup}, {"compile", r.timing.compile},
                    {"instantiate", r.timing.instantiate}, {"run", r.timing.run}};
  if (!r.code_cache.empty()) j["code_cache"] = r.code_cache;
  if (r.code_cache == "hit") j["code_cache_optimized"] = r.code_cache_optimized;
  if (!r.tier.empty()) j["tier"] = r.tier;
  j["usage"] = {{"cpu_ms", r.usage.cpu_ms},
                {"peak_rss_bytes", r.usage.peak_rss_bytes},
                {"peak_wasm_memory_bytes", r.usage.peak_wasm_memory_bytes}};
  if (r.usage.cgroup_peak_memory_bytes)
    j["usage"]["cgroup_peak_memory_bytes"] = *r.usage.cgroup_peak_memory_bytes;
  if (r.usage.cgroup_cpu_ms) j["usage"]["cgroup_cpu_ms"] = *r.usage.cgroup_cpu_ms;
  return j;
}

nlohmann::ordered_json publishing_json(const std::vector<std::pair<std::string, std::string>>& requested) {
  nlohmann::ordered_json req = nlohmann::ordered_json::object();
  for (const auto& [name, dest] : requested) req[name] = dest;
  return {{"published", false},
          {"reason", "wasmjail does not publish outputs (publishing is the orchestrator's job); they were written "
                     "to the local output folders listed in \"outputs\""},
          {"requested", req}};
}

std::string to_json_text(const Result& r, int indent) {
  return to_json(r).dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace wj
