// `wasmjail serve`: the executor as an HTTP/JSON service on a unix socket (and, with a
// bearer token, loopback TCP).
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "policies/server_config.h"
#include "server/api.h"
#include "cli/cli.h"
#include "storage/curl_lib.h"
#include "supervisor/code_cache.h"
#include "supervisor/policy_sandbox.h"

namespace wj::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kUsage =
    "usage: wasmjail serve [--config FILE] [--listen unix:PATH | --listen tcp:HOST:PORT]...\n"
    "\n"
    "Serves the HTTP/JSON API (see README: \"wasmjail serve\"). Without --config the built-in\n"
    "defaults apply (configs/server.yaml documents them); --listen replaces the config's\n"
    "listeners. TCP listeners must be loopback and need token_file in the config.\n"
    "SIGTERM or SIGINT: stop accepting, let running jobs finish within drain_timeout, then\n"
    "cancel them, and exit 0.\n";

int fail(const std::string& msg) {
  std::fprintf(stderr, "wasmjail serve: %s\n", msg.c_str());
  return kExitUsage;
}

}  // namespace

int serve(int argc, char** argv) {
  std::string config_path;
  std::vector<std::string> listen_args;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a == "--listen" && i + 1 < argc) {
      listen_args.push_back(argv[++i]);
    } else {
      std::fputs(kUsage, stderr);
      return fail("unknown or incomplete option " + a);
    }
  }
  ServerConfig cfg = default_server_config();
  if (!config_path.empty()) {
    auto c = load_server_config(config_path);
    if (!c) return fail(c.error().str());
    cfg = c.value();
  }
  if (!listen_args.empty()) {
    cfg.listen.clear();
    for (const auto& s : listen_args) {
      auto l = parse_listener(s);
      if (!l) return fail(l.error().message);
      cfg.listen.push_back(l.value());
    }
  }
  std::vector<ApiToken> tokens;
  bool has_tcp = false;
  for (const auto& l : cfg.listen) has_tcp |= l.kind == Listener::kTcp;
  if (has_tcp) {
    if (cfg.token_file.empty()) return fail("a TCP listener requires token_file in the config (a bearer token)");
    std::string warning;
    if (auto e = load_token_file(cfg.token_file, &tokens, &warning)) return fail(*e);
    if (!warning.empty()) std::fprintf(stderr, "wasmjail serve: warning: %s\n", warning.c_str());
  }
  // Every connection holds a descriptor: make room for the connection caps, within what
  // the administrator allows (the hard limit).
  if (rlimit nofile{}; getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = std::min<rlim_t>(nofile.rlim_max, 65536);
    setrlimit(RLIMIT_NOFILE, &nofile);
  }

  // libcurl (request paths, data: URLs, downloads) is loaded now, before any thread: a
  // server that could not use it does not start.
  if (std::string why; !curl::lib(&why)) return fail(why);

  // Every policy jobs may name is loaded now: a broken one stops the server from starting.
  std::map<std::string, std::shared_ptr<const Policy>> policies;
  std::vector<std::string> names = cfg.allowed_policies;
  if (std::find(names.begin(), names.end(), cfg.default_policy) == names.end()) names.push_back(cfg.default_policy);
  for (const auto& n : names) {
    auto p = load_policy(n, policy_dirs(cfg.policy_dirs));
    if (!p) return fail("policy " + n + ": " + p.error().str());
    policies[n] = std::make_shared<const Policy>(std::move(p.value()));
  }

  // The output root belongs to this server: created here (0700) or refused when another
  // user owns it, others may write it, or it is a symlink. Job folders are made beneath it.
  if (cfg.output_root.empty()) return fail("no output_root: set output_root in the config (or HOME)");
  UniqueFd output_root;
  if (auto err = open_private_dir(cfg.output_root, true, "output_root", &output_root)) return fail(*err);

  signal(SIGPIPE, SIG_IGN);  // a client that goes away must not take the server with it
  uv_loop_t* loop = uv_default_loop();
  ServerLog log(cfg.log_format == "json");
  ExecutorConfig ecfg;
  ecfg.concurrency = cfg.concurrency;
  ecfg.queue_size = cfg.queue_size;
  ecfg.retention = cfg.result_retention;
  ecfg.retention_bytes = cfg.retention_bytes;
  ecfg.output_root = cfg.output_root;
  ecfg.output_root_fd = std::make_shared<const UniqueFd>(std::move(output_root));
  ecfg.local_roots = cfg.local_roots;
  ecfg.local_roots_enforced = true;  // API jobs: only beneath local_roots, none without
  ecfg.cache_dir = cfg.cache_dir == "default" ? CodeCache::default_dir() : cfg.cache_dir;
  // A cache folder others could write (or its key) would let them choose the code jobs run.
  if (CodeCache probe(ecfg.cache_dir, 0); !probe.error().empty()) return fail("cache_dir: " + probe.error());
  ecfg.background_compile_min_bytes = CodeCache::background_compile_min();
  ecfg.background_compile = CodeCache::background_compile_enabled();
  ecfg.cache_max_bytes = cfg.cache_max_bytes;
  ecfg.on_event = [&log](const JobRecord& j, const char* ev) { log.job(j, ev); };
  // The cgroup layout, detected now (and the job cgroups of a server that crashed removed).
  {
    const sandbox::CgroupHost& cg = job_cgroup_host();
    log.event("cgroup", {{"version", sandbox::cgroup_version_name(cg.version)}, {"detail", cg.describe()}});
  }
  int exit_code = 0;
  {
    Executor executor(loop, ecfg);
    Api api(loop, executor, cfg, policies);
    HttpLimits hl;
    hl.max_body_bytes = cfg.max_request_bytes;
    hl.header_timeout_ms = cfg.header_timeout_ms;
    hl.idle_timeout_ms = cfg.idle_timeout_ms;
    hl.max_connections = cfg.max_connections;
    hl.max_buffered_bytes = cfg.max_buffered_bytes;
    HttpServer http(loop, hl, [&api](const std::shared_ptr<HttpExchange>& ex) { api.handle(ex); });
    for (const auto& l : cfg.listen) {
      std::optional<std::string> err;
      if (l.kind == Listener::kUnix) {
        std::error_code ec;
        fs::path parent = fs::path(l.path).parent_path();
        if (!parent.empty()) fs::create_directories(parent, ec);
        err = http.listen_unix(l.path, cfg.socket_mode);
      } else {
        err = http.listen_tcp(l.host, l.port, tokens);
      }
      if (err) {
        std::fprintf(stderr, "wasmjail serve: %s\n", err->c_str());
        exit_code = 1;
        break;
      }
      log.event("listening", {{"address", l.str()}});
    }
    uv_signal_t sigterm, sigint;
    struct ShutdownCtx {
      Executor* executor;
      HttpServer* http;
      ServerLog* log;
      double drain_ms;
      uv_signal_t* sigs[2];
      bool started = false;
    } ctx{&executor, &http, &log, cfg.drain_timeout_ms, {&sigterm, &sigint}};
    auto on_signal = [](uv_signal_t* s, int signum) {
      auto* c = static_cast<ShutdownCtx*>(s->data);
      if (c->started) return;
      c->started = true;
      c->log->event("shutdown_started", {{"signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"}});
      c->http->stop_accepting();
      c->executor->drain(c->drain_ms, [c] {
        c->log->event("shutdown_complete", {});
        for (uv_signal_t* sg : c->sigs) uv_close(reinterpret_cast<uv_handle_t*>(sg), nullptr);
        c->http->close_all([] {});
      });
    };
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sigint);
    sigterm.data = sigint.data = &ctx;
    if (exit_code != 0) {
      // Could not listen: nothing to drain.
      http.close_all([] {});
      uv_close(reinterpret_cast<uv_handle_t*>(&sigterm), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(&sigint), nullptr);
    } else {
      uv_signal_start(&sigterm, on_signal, SIGTERM);
      uv_signal_start(&sigint, on_signal, SIGINT);
    }
    uv_run(loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(loop);
  return exit_code;
}

}  // namespace wj::cli
