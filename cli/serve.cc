// `wasmjail serve`: the executor as an HTTP/JSON service on a unix socket (and, with a
// bearer token, loopback TCP).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "policies/server_config.h"
#include "server/api.h"
#include "server/gateway.h"
#include "server/callbacks.h"
#include "server/shutdown.h"
#include "cli/cli.h"
#include "storage/curl_lib.h"
#include "supervisor/zygote.h"
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
    "cancel them, and exit 0. Started by systemd with sockets (LISTEN_FDS, wasmjail.socket),\n"
    "it serves those sockets instead of the configured listeners.\n";

int fail(const std::string& msg) {
  std::fprintf(stderr, "wasmjail serve: %s\n", msg.c_str());
  return kExitUsage;
}

// The HTTP limits of serve's config (both modes).
HttpLimits http_limits(const ServerConfig& cfg) {
  HttpLimits hl;
  hl.max_body_bytes = cfg.max_request_bytes;
  hl.header_timeout_ms = cfg.header_timeout_ms;
  hl.idle_timeout_ms = cfg.idle_timeout_ms;
  hl.max_connections = cfg.max_connections;
  hl.max_buffered_bytes = cfg.max_buffered_bytes;
  return hl;
}

// Opens the config's listeners (a unix socket's folder is created first); false, with the
// error on stderr, at the first that fails. `mode` is logged when given.
bool listen_configured(HttpServer& http, const ServerConfig& cfg, const std::vector<ApiToken>& tokens,
                       ServerLog& log, const char* mode) {
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
      return false;
    }
    std::vector<std::pair<std::string, std::string>> fields = {{"address", l.str()}};
    if (mode) fields.emplace_back("mode", mode);
    log.event("listening", fields);
  }
  return true;
}

// serve with `queue: {nats: [...]}`: the same API, jobs on the NATS JetStream queue.
int serve_gateway(const ServerConfig& cfg, std::map<std::string, std::shared_ptr<const Policy>> policies,
                  const std::vector<ApiToken>& tokens) {
  signal(SIGPIPE, SIG_IGN);
  ServerLog log(cfg.log_format == "json");
  std::unique_ptr<NatsQueue> queue;
  double backoff_ms = 500;
  for (;;) {
    std::string err;
    queue = NatsQueue::open(cfg.queue, &err);
    if (queue) break;
    std::fprintf(stderr, "wasmjail serve: %s; retrying in %.1fs\n", err.c_str(), backoff_ms / 1000);
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(backoff_ms)));
    backoff_ms = std::min(backoff_ms * 2, 30000.0);
  }
  log.event("nats_connected", {{"mode", "gateway"}, {"stream", cfg.queue.stream}});
  uv_loop_t* loop = uv_default_loop();
  int exit_code = 0;
  {
    Gateway gw(loop, *queue, cfg, std::move(policies));
    HttpServer http(loop, http_limits(cfg), [&gw](const std::shared_ptr<HttpExchange>& ex) { gw.handle(ex); });
    if (!listen_configured(http, cfg, tokens, log, "gateway")) exit_code = 1;
    SignalShutdown shutdown(loop, &http, &log, [&gw, &http](std::function<void()> done) {
      http.stop_accepting();
      gw.stop(std::move(done));
    });
    shutdown.listen();
    if (exit_code != 0) shutdown.trigger(SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(loop);
  return exit_code;
}

// A listener systemd passed (socket activation).
struct InheritedListener {
  int fd;
  bool tcp;
  std::string address;  // for the log: "unix:/run/wasmjail/wasmjail.sock", "tcp:127.0.0.1:8700"
};

// The LISTEN_FDS protocol of sd_listen_fds(3), which systemd documents as a stable interface:
// when LISTEN_PID is this process, fds 3 .. 3+LISTEN_FDS-1 are listening sockets. Written
// here rather than linking libsystemd, which would load 7 more shared objects into every
// `run` and `exec` process (start-up cost, README "Performance") for these few lines. The
// variables are removed so no child sees them. Only stream sockets that are listening, on
// a unix path or a loopback address, are taken; anything else is an error.
cfg::Expected<std::vector<InheritedListener>> systemd_listeners() {
  const char* pid_s = std::getenv("LISTEN_PID");
  const char* n_s = std::getenv("LISTEN_FDS");
  std::string pid_v = pid_s ? pid_s : "", n_v = n_s ? n_s : "";
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  std::vector<InheritedListener> out;
  if (pid_v.empty() || n_v.empty()) return out;
  char* end = nullptr;
  long pid = std::strtol(pid_v.c_str(), &end, 10);
  if (*end || pid != getpid()) return out;  // meant for another process
  long n = std::strtol(n_v.c_str(), &end, 10);
  if (*end || n < 0 || n > 64) return cfg::Error{{}, "LISTEN_FDS=\"" + n_v + "\" is not a count of sockets"};
  for (int fd = 3; fd < 3 + n; ++fd) {
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    int type = 0, listening = 0;
    socklen_t len = sizeof type;
    sockaddr_storage ss{};
    socklen_t slen = sizeof ss;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &(len = sizeof listening)) != 0 || !listening ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &slen) != 0)
      return cfg::Error{{}, "inherited fd " + std::to_string(fd) + " is not a listening stream socket (ListenStream= in the .socket unit)"};
    char host[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_UNIX) {
      const auto* un = reinterpret_cast<const sockaddr_un*>(&ss);
      out.push_back({fd, false, "unix:" + std::string(un->sun_path, strnlen(un->sun_path, sizeof un->sun_path))});
    } else if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
      int port = 0;
      bool loopback = false;
      if (ss.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
      } else {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
      }
      std::string addr = "tcp:" + std::string(host) + ":" + std::to_string(port);
      if (!loopback) return cfg::Error{{}, "inherited " + addr + " is not a loopback address (TCP listeners must be)"};
      out.push_back({fd, true, addr});
    } else {
      return cfg::Error{{}, "inherited fd " + std::to_string(fd) + " is neither a unix nor a TCP socket"};
    }
  }
  return out;
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
  // Started by systemd with its socket: its listeners replace the config's (and --listen).
  auto inherited = systemd_listeners();
  if (!inherited) return fail(inherited.error().message);
  std::vector<ApiToken> tokens;
  bool has_tcp = false;
  if (!inherited.value().empty()) {
    cfg.listen.clear();
    for (const auto& l : inherited.value()) has_tcp |= l.tcp;
  }
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

  if (!cfg.queue.urls.empty()) return serve_gateway(cfg, std::move(policies), tokens);

  signal(SIGPIPE, SIG_IGN);  // a client that goes away must not take the server with it
  uv_loop_t* loop = uv_default_loop();
  ServerLog log(cfg.log_format == "json");
  ExecutorConfig ecfg;
  ecfg.concurrency = cfg.concurrency;
  ecfg.warm_pool = cfg.warm_pool;
  ecfg.answer_at_record = true;
  // Jobs come only from a fork server (one forked before any job data existed, or a clean
  // exec'd one): never cloned from this process, which holds every job's data and the token.
  Zygote::set_required(true);
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
    std::string cb_error;
    std::unique_ptr<CallbackSender> callbacks = CallbackSender::create(loop, executor, cfg.callbacks, log, &cb_error);
    if (!cb_error.empty()) return fail(cb_error);
    api.set_callbacks(callbacks.get());
    HttpServer http(loop, http_limits(cfg), [&api](const std::shared_ptr<HttpExchange>& ex) { api.handle(ex); });
    if (!listen_configured(http, cfg, tokens, log, nullptr)) exit_code = 1;
    for (const auto& l : inherited.value()) {
      if (exit_code != 0) break;
      if (auto err = http.listen_fd(l.fd, l.tcp, l.tcp ? tokens : std::vector<ApiToken>{})) {
        std::fprintf(stderr, "wasmjail serve: %s\n", err->c_str());
        exit_code = 1;
        break;
      }
      log.event("listening", {{"address", l.address}, {"from", std::string("systemd")}});
    }
    SignalShutdown shutdown(loop, &http, &log, [&](std::function<void()> done) {
      http.stop_accepting();
      executor.drain(cfg.drain_timeout_ms, [cb = callbacks.get(), done = std::move(done)] {
        if (cb) cb->shutdown();  // retries still waiting give up
        done();
      });
    });
    if (exit_code != 0)
      shutdown.close_now();  // could not listen: nothing to drain
    else
      shutdown.listen();
    uv_run(loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(loop);
  return exit_code;
}

}  // namespace wj::cli
