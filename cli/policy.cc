// `wasmjail policy check|show`: validate policy files and print resolved policies.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "policies/policy.h"
#include "storage/storage.h"
#include "cli/cli.h"

#ifndef WJ_SOURCE_POLICY_DIR
#define WJ_SOURCE_POLICY_DIR ""
#endif
#ifndef WJ_BUILD_DIR
#define WJ_BUILD_DIR ""
#endif
#ifndef WJ_SYSTEM_POLICY_DIR
#define WJ_SYSTEM_POLICY_DIR "/etc/wasmjail/policies"
#endif

namespace wj::cli {
namespace {

constexpr const char* kUsage =
    "usage: wasmjail policy check [--policy-dir DIR]... NAME|FILE...\n"
    "       wasmjail policy show  [--policy-dir DIR]... NAME|FILE\n"
    "\n"
    "check: validates each policy (resolving extends); prints \"OK FILE\" or file:line:col: error.\n"
    "       Exit 0 when all are valid, 1 otherwise.\n"
    "show:  prints the fully resolved policy (after extends, defaults explicit) as YAML.\n"
    "A NAME is looked up as NAME.yaml in each --policy-dir, then $WASMJAIL_POLICY_PATH\n"
    "(colon-separated), then /etc/wasmjail/policies, then (from a build folder) the source\n"
    "tree's configs/policies.\n";

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "wasmjail policy: %s\n%s", msg.c_str(), kUsage);
  return kExitUsage;
}

std::string error_line(const std::string& arg, const cfg::Error& e) {
  return (e.where.file.empty() ? arg + ": " : "") + e.str();
}

}  // namespace

std::string shipped_policy_dir() {
  // Development only: a binary running from its build folder uses the source tree's
  // policies. An installed binary never does (it has /etc/wasmjail/policies).
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  std::filesystem::path build = WJ_BUILD_DIR;
  if (!build.empty() && std::filesystem::equivalent(exe.parent_path(), build, ec)) return WJ_SOURCE_POLICY_DIR;
  auto dir = exe.parent_path() / ".." / "configs" / "policies";
  if (std::filesystem::is_directory(dir, ec)) return std::filesystem::weakly_canonical(dir, ec).string();
  return "";
}

std::optional<JobText> read_job_text(const std::string& job_file, std::string* error) {
  constexpr size_t kMaxJobFileBytes = 16u << 20;
  JobText job{"", job_file, ""};
  if (job_file == "-") {
    job.name = "<stdin>";
    job.base_dir = std::filesystem::current_path().string();
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) {
      job.text.append(buf, n);
      if (job.text.size() > kMaxJobFileBytes) {
        *error = "<stdin>: job is larger than 16MiB";
        return std::nullopt;
      }
    }
    return job;
  }
  std::vector<uint8_t> bytes;
  if (auto err = read_file_capped(job_file, kMaxJobFileBytes, &bytes, "job file size limit")) {
    *error = *err;
    return std::nullopt;
  }
  job.text.assign(bytes.begin(), bytes.end());
  job.base_dir = std::filesystem::absolute(std::filesystem::path(job_file)).parent_path().string();
  return job;
}

std::vector<std::string> policy_dirs(const std::vector<std::string>& operator_dirs) {
  std::vector<std::string> dirs = policy_search_dirs(operator_dirs, "");
  dirs.push_back(WJ_SYSTEM_POLICY_DIR);
  if (std::string shipped = shipped_policy_dir(); !shipped.empty()) dirs.push_back(shipped);
  return dirs;
}

int policy(int argc, char** argv) {
  if (argc < 1) return usage_error("missing check or show");
  std::string sub = argv[0];
  if (sub == "-h" || sub == "--help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (sub != "check" && sub != "show") return usage_error("unknown subcommand \"" + sub + "\"");
  std::vector<std::string> dirs, args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--policy-dir") {
      if (i + 1 >= argc) return usage_error("--policy-dir needs a folder");
      dirs.push_back(argv[++i]);
    } else if (a.size() > 1 && a[0] == '-') {
      return usage_error("unknown option " + a);
    } else {
      args.push_back(a);
    }
  }
  auto search = policy_dirs(dirs);
  if (sub == "show") {
    if (args.size() != 1) return usage_error("show takes exactly one NAME or FILE");
    auto p = load_policy(args[0], search);
    if (!p) {
      std::fprintf(stderr, "%s\n", error_line(args[0], p.error()).c_str());
      return 1;
    }
    std::fputs(to_yaml(p.value()).c_str(), stdout);
    return 0;
  }
  if (args.empty()) return usage_error("check needs at least one NAME or FILE");
  int failed = 0;
  for (const auto& a : args) {
    auto p = load_policy(a, search);
    if (p) {
      std::printf("OK %s\n", a.c_str());
    } else {
      std::fflush(stdout);
      std::fprintf(stderr, "%s\n", error_line(a, p.error()).c_str());
      ++failed;
    }
    std::fflush(stdout);
  }
  return failed ? 1 : 0;
}

}  // namespace wj::cli
