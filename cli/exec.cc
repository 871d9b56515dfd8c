// `wasmjail exec JOB_FILE`: run a JobSpecWasm job and print one result JSON.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "policies/jobspec.h"
#include "cli/cli.h"
#include "supervisor/code_cache.h"
#include "supervisor/executor.h"
#include "storage/storage.h"
#include "supervisor/supervisor.h"

namespace wj::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kUsage =
    "usage: wasmjail exec JOB_FILE [--policy NAME|FILE] [--policy-dir DIR]... [--output-dir DIR]\n"
    "                     [--format json|bacalhau]\n"
    "\n"
    "Runs a job described by Bacalhau's JobSpecWasm (YAML or JSON; JOB_FILE '-' reads stdin)\n"
    "and prints one result JSON on stdout, also for a job that could not run. Exit code:\n"
    "0 when the status is ok, 1 for any other status, 2 for a usage error (including a bad\n"
    "--policy). The job runs under --policy (default: the shipped \"default\"); a job's own\n"
    "`limits:` may only ask for less than the policy allows.\n";


// Outputs the job asked to have published (set once the job ran): reported, never done.
std::vector<std::pair<std::string, std::string>> not_published;

nlohmann::ordered_json render(const Result& r, const PreparedJob* prepared, const std::string& format) {
  if (format == "bacalhau") {
    // Bacalhau's RunCommandResult.
    return nlohmann::ordered_json{{"Stdout", r.out.data},         {"StdoutTruncated", r.out.truncated},
                          {"stderr", r.err.data},         {"StderrTruncated", r.err.truncated},
                          {"ExitCode", r.exit_code},      {"ErrorMsg", r.error}};
  }
  nlohmann::ordered_json j = to_json(r);
  if (prepared && !prepared->outputs.empty()) {
    nlohmann::ordered_json outs = nlohmann::ordered_json::object();
    for (const auto& [name, host] : prepared->outputs) outs[name] = host;
    j["outputs"] = outs;
  }
  if (!not_published.empty()) j["publishing"] = publishing_json(not_published);
  return j;
}

std::string dump(const nlohmann::ordered_json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

int finish(const Result& r, const PreparedJob* prepared, const std::string& format, const std::string& output_dir,
           int code_if_not_ok) {
  nlohmann::ordered_json j = render(r, prepared, format);
  if (!output_dir.empty()) {
    // Bacalhau's result layout, plus our result.json.
    // The folder also holds the job's outputs, which a guest filled: each result file is
    // created anew beneath the folder's fd, never through whatever the guest left there.
    std::optional<std::string> err;
    std::error_code ec;
    fs::create_directories(output_dir, ec);
    UniqueFd dir(open(output_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) err = "cannot open " + output_dir + ": " + std::strerror(errno);
    for (auto [name, data] : {std::pair{"stdout", r.out.data}, std::pair{"stderr", r.err.data},
                              std::pair{"exitCode", std::to_string(r.exit_code)},
                              std::pair{"result.json", dump(render(r, prepared, "json")) + "\n"}})
      if (!err) err = write_new_file(dir.get(), name, data);
    if (err) std::fprintf(stderr, "wasmjail exec: %s: %s\n", output_dir.c_str(), err->c_str());
  }
  std::string text = dump(j) + "\n";
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  return r.status == Status::kOk ? 0 : code_if_not_ok;
}

Result invalid(std::string msg) {
  Result r;
  r.status = Status::kInvalidJob;
  r.exit_code = -1;
  r.error = std::move(msg);
  return r;
}

}  // namespace

int exec(int argc, char** argv) {
  std::string job_file, output_dir, format = "json", policy_ref = "default";
  std::vector<std::string> policy_dir_args;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    auto need = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--policy") {
      if (!need(&policy_ref) || policy_ref.empty()) return finish(invalid("--policy needs a NAME or FILE"), nullptr, format, "", kExitUsage);
    } else if (a == "--policy-dir") {
      std::string d;
      if (!need(&d) || d.empty()) return finish(invalid("--policy-dir needs a folder"), nullptr, format, "", kExitUsage);
      policy_dir_args.push_back(d);
    } else if (a == "--output-dir") {
      if (!need(&output_dir) || output_dir.empty()) return finish(invalid("--output-dir needs a folder"), nullptr, format, "", kExitUsage);
    } else if (a == "--format") {
      if (!need(&format) || (format != "json" && format != "bacalhau")) {
        format = "json";
        std::fputs(kUsage, stderr);
        return finish(invalid("--format must be json or bacalhau"), nullptr, format, "", kExitUsage);
      }
    } else if (a.size() > 1 && a[0] == '-' ) {
      std::fputs(kUsage, stderr);
      return finish(invalid("unknown option " + a), nullptr, format, "", kExitUsage);
    } else if (job_file.empty()) {
      job_file = a;
    } else {
      std::fputs(kUsage, stderr);
      return finish(invalid("more than one JOB_FILE given (" + job_file + ", " + a + ")"), nullptr, format, "", kExitUsage);
    }
  }
  if (job_file.empty()) {
    std::fputs(kUsage, stderr);
    return finish(invalid("missing JOB_FILE"), nullptr, format, "", kExitUsage);
  }

  auto policy = load_policy(policy_ref, policy_dirs(policy_dir_args));
  if (!policy) return finish(invalid("policy: " + policy.error().str()), nullptr, format, "", kExitUsage);

  std::string read_error;
  auto job_text = read_job_text(job_file, &read_error);
  if (!job_text) return finish(invalid(read_error), nullptr, format, output_dir, 1);
  auto spec = parse_job_spec(job_text->text, job_text->name, job_text->base_dir);
  if (!spec) return finish(invalid(spec.error().str()), nullptr, format, output_dir, 1);

  auto pol = std::make_shared<const Policy>(std::move(policy.value()));
  // The job may ask for less than the policy allows, never more.
  {
    PrepareOptions p;
    RunOptions o;
    if (auto over = options_for(spec.value(), pol, &p, &o)) return finish(invalid(*over), nullptr, format, output_dir, 1);
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::shared_ptr<JobRecord> job;
  {
    ExecutorConfig cfg;
    cfg.concurrency = 1;
    cfg.cache_dir = CodeCache::default_dir();
    cfg.background_compile = CodeCache::background_compile_enabled();
    cfg.background_compile_max_bytes = CodeCache::kOneShotBackgroundMax;
    cfg.background_ends_with_job = true;
    if (CodeCache probe(cfg.cache_dir, 0); !probe.error().empty()) {
      std::fprintf(stderr, "wasmjail: warning: code cache not used: %s\n", probe.error().c_str());
      cfg.cache_dir.clear();
    }
    Executor ex(&loop, cfg);
    Submission sub;
    sub.spec = std::move(spec.value());
    sub.policy = pol;
    sub.policy_name = policy_ref;
    if (!output_dir.empty()) sub.output_dir = fs::absolute(output_dir).string();
    std::string err;
    job = ex.submit(std::move(sub), &err);
    if (!job) return finish(invalid(err), nullptr, format, output_dir, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(&loop);
  PreparedJob shown;
  shown.outputs = job->outputs;
  not_published = job->not_published;
  return finish(job->result, &shown, format, output_dir, 1);
}

}  // namespace wj::cli
