// `wasmjail run`: run one module from the command line, in the spirit of `wasmtime run`.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "supervisor/code_cache.h"
#include "supervisor/supervisor.h"

namespace wj::cli {
namespace {

constexpr const char* kUsage =
    "usage: wasmjail run [--env K=V]... [--dir HOST::GUEST[:ro]]... [--argv0 NAME]\n"
    "                    [--invoke NAME] [--policy NAME|FILE] [--policy-dir DIR]...\n"
    "                    [--limit KEY=VALUE]...\n"
    "                    MODULE.wasm [ARGS...]\n"
    "\n"
    "Runs a WASI preview1 module in a sandboxed child process. The guest sees exactly the\n"
    "environment given with --env (nothing of the host's). Exit code: the guest's; 134 on a\n"
    "trap; 2 for a usage error or a module that cannot be read or is not valid wasm;\n"
    "124 on timeout; 125 when wasmjail stopped the job for another reason.\n"
    "--policy names the policy the job runs under (default: the shipped \"default\"); a\n"
    "NAME is looked up in each --policy-dir, $WASMJAIL_POLICY_PATH, /etc/wasmjail/policies,\n"
    "then (from a build folder) the source tree's configs/policies.\n"
    "--limit asks for less than the policy allows (e.g. --limit memory=128MiB); asking for\n"
    "more fails the job.\n";

void write_fd(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;  // our consumer went away; the job's result still matters
    data += w;
    n -= static_cast<size_t>(w);
  }
}

// Copies our stdin into the guest's pipe as it arrives, then closes the pipe (the guest reads
// end of file). It blocks on either side without holding up the job: a guest that never
// reads leaves it waiting until wasmjail exits. It never allocates and never exits (it waits
// in pause() once done): the supervisor clones job processes with a raw clone(), which must
// not happen while another thread holds a malloc lock, as a thread's exit may.
void* pump_stdin(void* arg) {
  const int out = static_cast<int>(reinterpret_cast<intptr_t>(arg));
  sigset_t pipe_sig;
  sigemptyset(&pipe_sig);
  sigaddset(&pipe_sig, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_sig, nullptr);  // a job that ended gives EPIPE, not SIGPIPE
  static char buf[64 * 1024];
  for (bool open = true; open;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(out, buf + off, static_cast<size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        open = false;  // the job has ended (EPIPE): nothing reads any more
        break;
      }
      off += w;
    }
  }
  close(out);
  for (;;) pause();
}

// The read end of a pipe fed from our stdin, or -1 (no stdin: the guest reads end of file).
int stdin_stream() {
  struct stat st {};
  if (fstat(0, &st) != 0) {
    // Closed: hold fd 0 with /dev/null, or the next fd opened (a pipe libuv owns) would be 0.
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd > 0) close(null_fd);
    return -1;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return -1;
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int err = pthread_create(&t, &attr, pump_stdin, reinterpret_cast<void*>(static_cast<intptr_t>(p[1])));
  pthread_attr_destroy(&attr);
  if (err != 0) {
    close(p[0]);
    close(p[1]);
    return -1;
  }
  return p[0];
}

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "wasmjail run: %s\n%s", msg.c_str(), kUsage);
  return kExitUsage;
}

}  // namespace

int run(int argc, char** argv) {
  Job job;
  std::string argv0, policy_ref = "default";
  std::vector<std::string> policy_dir_args;
  YAML::Node limit_map(YAML::NodeType::Map);  // --limit options, parsed like a policy's limits
  int i = 0;
  auto value = [&](const std::string& opt, std::string* out) {
    if (i + 1 >= argc) return false;
    *out = argv[++i];
    (void)opt;
    return true;
  };
  for (; i < argc; ++i) {
    std::string a = argv[i];
    std::string v, err;
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--") {
      ++i;
      break;
    } else if (a == "--env") {
      if (!value(a, &v)) return usage_error("--env needs KEY=VALUE");
      auto kv = parse_env_assignment(v, &err);
      if (!kv) return usage_error(err);
      job.env.push_back(*kv);
    } else if (a == "--dir") {
      if (!value(a, &v)) return usage_error("--dir needs HOST::GUEST");
      auto d = parse_dir_mapping(v, &err);
      if (!d) return usage_error(err);
      job.dirs.push_back(*d);
    } else if (a == "--argv0") {
      if (!value(a, &argv0)) return usage_error("--argv0 needs a name");
    } else if (a == "--invoke") {
      if (!value(a, &job.entry_point) || job.entry_point.empty()) return usage_error("--invoke needs a name");
    } else if (a == "--policy") {
      if (!value(a, &policy_ref) || policy_ref.empty()) return usage_error("--policy needs a NAME or FILE");
    } else if (a == "--limit") {
      if (!value(a, &v) || v.find('=') == std::string::npos) return usage_error("--limit needs KEY=VALUE (e.g. memory=128MiB)");
      std::string key = v.substr(0, v.find('='));
      if (limit_map[key].IsDefined()) return usage_error("--limit " + key + " given twice");
      limit_map[key] = v.substr(v.find('=') + 1);
    } else if (a == "--policy-dir") {
      if (!value(a, &v)) return usage_error("--policy-dir needs a folder");
      policy_dir_args.push_back(v);
    } else if (a.size() > 1 && a[0] == '-') {
      return usage_error("unknown option " + a);
    } else {
      break;
    }
  }
  if (i >= argc) return usage_error("missing MODULE.wasm");
  job.module_path = argv[i++];
  job.argv.push_back(argv0.empty() ? job.module_path : argv0);
  for (; i < argc; ++i) job.argv.push_back(argv[i]);

  auto policy = load_policy(policy_ref, policy_dirs(policy_dir_args));
  if (!policy) {
    const cfg::Error& e = policy.error();
    std::fprintf(stderr, "wasmjail: error: %s%s\n", e.where.file.empty() ? ("policy " + policy_ref + ": ").c_str() : "",
                 e.str().c_str());
    return kExitUsage;
  }

  RunOptions opts;
  if (limit_map.size() > 0) {
    cfg::Doc doc{""};
    try {
      opts.job_limits = parse_limits(limit_map, doc);
    } catch (const cfg::ConfigError& e) {
      return usage_error(e.error.message);
    }
  }
  opts.stdio_is_tty[1] = isatty(1);
  opts.stdio_is_tty[2] = isatty(2);
  // Output is streamed to our stdout/stderr as it arrives: the Result needs only a little
  // of it (the policy's caps still apply, e.g. output.truncate: false).
  opts.keep_max = 64 * 1024;
  opts.v8_flags = v8_flags_for(policy->wasm);
  opts.cache_dir = CodeCache::default_dir();
  if (CodeCache probe(opts.cache_dir, 0); !probe.error().empty()) {
    std::fprintf(stderr, "wasmjail: warning: code cache not used: %s\n", probe.error().c_str());
    opts.cache_dir.clear();
  }
  // One job: a turbofan policy compiles eagerly (a background compile would delay the exit).
  opts.background_compile_min_bytes = 0;
  // Under the tiered tier a cold module's TurboFan code is compiled beside the job for the
  // next run, and given up if the job ends first.
  opts.background_compile = CodeCache::background_compile_enabled();
  opts.background_compile_max_bytes = CodeCache::kOneShotBackgroundMax;
  opts.background_ends_with_job = true;
  // The hot-code compile a job's end starts runs after we exit, detached, unless
  // WASMJAIL_BACKGROUND_COMPILE=wait (then we wait for it here).
  opts.detach_hot_compile = !CodeCache::background_compile_waits();
  opts.policy = std::make_shared<const Policy>(std::move(policy.value()));
  opts.on_output = [](Stream s, const char* data, size_t n) {
    write_fd(s == Stream::kStdout ? 1 : 2, data, n);
  };
  // Our stdout or stderr is a pipe: the guest's stream is spliced into it (no copy through
  // this process).
  for (int fd : {1, 2}) {
    struct stat st {};
    if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) opts.splice_to[fd] = fd;
  }
  // The guest's stdin streams from ours, as with wasmtime (not bounded by stdin_bytes,
  // which caps what a job spec carries: nothing of it is held in memory here).
  opts.stdin_fd = stdin_stream();
  Result r = run_job(job, opts);
  // Best effort is visible: the user learns which protections this machine did not apply.
  if (r.sandbox && !r.sandbox->skipped.empty()) {
    std::string names;
    for (const auto& n : r.sandbox->skipped) names += (names.empty() ? "" : ", ") + n;
    std::fprintf(stderr, "wasmjail: warning: sandbox mechanisms skipped (best_effort in the policy): %s\n", names.c_str());
  }

  switch (r.status) {
    case Status::kOk:
      if (r.exit_code >= 0 && r.exit_code <= 255) return static_cast<int>(r.exit_code);
      std::fprintf(stderr, "wasmjail: guest exited with status %lld (outside 0..255)\n",
                   static_cast<long long>(r.exit_code));
      return 1;
    case Status::kTrap: {
      std::string msg = "wasmjail: " + job.module_path + ": wasm trap: " + r.trap->message + "\n";
      for (const auto& f : r.trap->backtrace) msg += "    at " + f + "\n";
      std::fputs(msg.c_str(), stderr);
      return kExitTrap;
    }
    case Status::kInvalidJob:
      std::fprintf(stderr, "wasmjail: error: %s\n", r.error.c_str());
      return kExitUsage;
    case Status::kTimeout:
      std::fprintf(stderr, "wasmjail: %s: %s\n", std::string(to_string(r.status)).c_str(), r.error.c_str());
      return kExitTimeout;
    default:
      std::fprintf(stderr, "wasmjail: %s: %s\n", std::string(to_string(r.status)).c_str(), r.error.c_str());
      return kExitStopped;
  }
}

}  // namespace wj::cli
