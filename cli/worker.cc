// `wasmjail worker`: takes jobs from the NATS JetStream queue and runs them here (README:
// "Scaling out").
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cli/cli.h"
#include "policies/worker_config.h"
#include "server/http_server.h"
#include "server/shutdown.h"
#include "server/worker.h"
#include "storage/curl_lib.h"
#include "storage/host_fs.h"
#include "supervisor/code_cache.h"
#include "supervisor/zygote.h"

namespace wj::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kUsage =
    "usage: wasmjail worker --nats URL[,URL...] [--config FILE] [--concurrency N] [--ack-wait DURATION]\n"
    "\n"
    "Takes jobs from the NATS JetStream work queue, runs each here (same executor, policies,\n"
    "sandbox and code cache as serve), stores the result and acks (README: \"Scaling out\").\n"
    "--nats and the options replace the config's values (configs/worker.yaml documents it).\n"
    "NATS unreachable at start: the error is printed and the connection retried with backoff\n"
    "(0.5 s doubling to 30 s). SIGTERM or SIGINT: stop fetching, let running jobs finish within\n"
    "drain_timeout, hand the rest back to the queue, exit 0.\n";

int fail(const std::string& msg) {
  std::fprintf(stderr, "wasmjail worker: %s\n", msg.c_str());
  return kExitUsage;
}

std::atomic<int> g_stop_signal{0};

}  // namespace

int worker(int argc, char** argv) {
  std::string config_path, nats_arg, concurrency_arg, ack_wait_arg;
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
    } else if ((a == "--config" && need(&config_path)) || (a == "--nats" && need(&nats_arg)) ||
               (a == "--concurrency" && need(&concurrency_arg)) ||
               (a == "--ack-wait" && need(&ack_wait_arg))) {
    } else {
      std::fputs(kUsage, stderr);
      return fail("unknown or incomplete option " + a);
    }
  }
  WorkerConfig cfg = default_worker_config();
  if (!config_path.empty()) {
    auto c = load_worker_config(config_path);
    if (!c) return fail(c.error().str());
    cfg = c.value();
  }
  if (!nats_arg.empty()) {
    auto u = parse_nats_urls(nats_arg);
    if (!u) return fail("--nats: " + u.error().message);
    cfg.queue.urls = u.value();
  }
  if (cfg.queue.urls.empty())
    return fail("no NATS server given: --nats URL[,URL...] or queue.nats in --config");
  if (!concurrency_arg.empty()) {
    char* end = nullptr;
    long n = std::strtol(concurrency_arg.c_str(), &end, 10);
    if (concurrency_arg.empty() || *end || n < 1 || n > 1024)
      return fail("--concurrency must be a number from 1 to 1024");
    cfg.concurrency = static_cast<size_t>(n);
  }
  if (!ack_wait_arg.empty()) {
    std::string err;
    double ms = cfg::parse_duration_ms(ack_wait_arg, &err);
    if (!err.empty()) return fail("--ack-wait: " + err);
    if (ms < 1000)
      return fail("--ack-wait must be at least 1s (in-progress acks are sent every third of it)");
    cfg.ack_wait_ms = ms;
  }
  std::vector<ApiToken> tokens;
  for (const auto& l : cfg.metrics_listen)
    if (l.kind == Listener::kTcp && tokens.empty()) {
      std::string warning;
      if (auto e = load_token_file(cfg.token_file, &tokens, &warning)) return fail(*e);
      if (!warning.empty()) std::fprintf(stderr, "wasmjail worker: warning: %s\n", warning.c_str());
    }
  // The worker's process runs NATS client threads: job processes must come from the fork
  // server (forked in main() while the process had one thread), never from a raw clone here.
  if (!Zygote::get())
    return fail("the fork server is not running (WASMJAIL_ZYGOTE=off?); the worker needs it");
  if (std::string why; !curl::lib(&why)) return fail(why);
  std::map<std::string, std::shared_ptr<const Policy>> policies;
  std::vector<std::string> names = cfg.allowed_policies;
  if (std::find(names.begin(), names.end(), cfg.default_policy) == names.end())
    names.push_back(cfg.default_policy);
  for (const auto& n : names) {
    auto p = load_policy(n, policy_dirs(cfg.policy_dirs));
    if (!p) return fail("policy " + n + ": " + p.error().str());
    policies[n] = std::make_shared<const Policy>(std::move(p.value()));
  }
  // The work folder belongs to this worker: created (0700) or refused when another user
  // owns it, others may write it, or it is a symlink (as serve's output_root).
  UniqueFd work_dir;
  if (auto err = open_private_dir(cfg.work_dir, true, "work_dir", &work_dir)) return fail(*err);

  signal(SIGPIPE, SIG_IGN);
  ServerLog log(cfg.log_format == "json");
  // Connect, retrying with backoff: a worker started before its NATS cluster waits for it.
  struct sigaction sa {};
  sa.sa_handler = [](int s) { g_stop_signal = s; };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::unique_ptr<NatsQueue> queue;
  double backoff_ms = 500;
  for (;;) {
    std::string err;
    queue = NatsQueue::open(cfg.queue, &err);
    if (queue) break;
    std::fprintf(stderr, "wasmjail worker: %s; retrying in %.1fs\n", err.c_str(), backoff_ms / 1000);
    std::fflush(stderr);
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<long>(backoff_ms));
    while (std::chrono::steady_clock::now() < until && !g_stop_signal)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (g_stop_signal) return 1;
    backoff_ms = std::min(backoff_ms * 2, 30000.0);
  }
  log.event("nats_connected",
            {{"servers", std::to_string(cfg.queue.urls.size())}, {"stream", cfg.queue.stream}});

  uv_loop_t* loop = uv_default_loop();
  ExecutorConfig ecfg;
  ecfg.concurrency = cfg.concurrency;
  ecfg.queue_size = 1024;
  ecfg.retention = 64;  // results live in NATS; a few are kept for the logs
  ecfg.output_root = cfg.work_dir;
  ecfg.output_root_fd = std::make_shared<const UniqueFd>(std::move(work_dir));
  ecfg.cache_dir = cfg.cache_dir == "default" ? CodeCache::default_dir() : cfg.cache_dir;
  ecfg.background_compile_min_bytes = CodeCache::background_compile_min();
  ecfg.cache_max_bytes = cfg.cache_max_bytes;
  // Warm job processes per policy (the concurrency), and, as in serve, jobs come only from a
  // fork server (never cloned from this process, which holds every job's data).
  ecfg.warm_pool = -1;
  Zygote::set_required(true);
  ecfg.on_event = [&log](const JobRecord& j, const char* ev) {
    if (std::string(ev) == "finished") log.job(j, ev);
  };
  if (cfg.cache_dir == "default") cfg.cache_dir = ecfg.cache_dir;
  // A queued job may name no host file but the worker's own copies of its blobs: enforced
  // again by storage when the sources are opened.
  ecfg.local_roots = {(cfg.cache_dir.empty() ? cfg.work_dir : cfg.cache_dir) + "/blobs"};
  ecfg.local_roots_enforced = true;
  int exit_code = 0;
  {
    Executor executor(loop, ecfg);
    Worker w(loop, executor, *queue, cfg, policies, log);
    HttpServer http(loop, HttpLimits{}, [&w](const std::shared_ptr<HttpExchange>& ex) {
      const auto& rq = ex->request();
      if (rq.method == "GET" && rq.path == "/metrics")
        ex->respond(200, "text/plain; version=0.0.4", w.metrics());
      else if (rq.method == "GET" && rq.path == "/healthz")
        ex->respond(200, "application/json", "{\"status\": \"ok\"}");
      else
        ex->respond(404, "application/json",
                    "{\"error\": {\"code\": \"not_found\", \"message\": \"only /metrics and /healthz\"}}");
    });
    for (const auto& l : cfg.metrics_listen) {
      auto err = l.kind == Listener::kUnix ? http.listen_unix(l.path, 0660)
                                           : http.listen_tcp(l.host, l.port, tokens);
      if (err) {
        std::fprintf(stderr, "wasmjail worker: metrics listener %s: %s\n", l.str().c_str(), err->c_str());
        exit_code = 1;
      }
    }
    if (exit_code == 0) {
      if (auto err = w.start()) {
        std::fprintf(stderr, "wasmjail worker: %s\n", err->c_str());
        exit_code = 1;
      }
    }
    SignalShutdown shutdown(loop, &http, &log, [&w](std::function<void()> done) { w.drain(std::move(done)); });
    shutdown.listen();
    if (exit_code != 0 || g_stop_signal) shutdown.trigger(g_stop_signal ? g_stop_signal.load() : SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(loop);
  queue.reset();
  return exit_code;
}

}  // namespace wj::cli
