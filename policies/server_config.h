// ServerConfig: `wasmjail serve`'s YAML configuration (configs/server.yaml documents it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "policies/config_util.h"
#include "policies/queue_config.h"

namespace wj {

struct Listener {
  enum Kind { kUnix, kTcp } kind = kUnix;
  std::string path;  // unix
  std::string host;  // tcp: a loopback address
  int port = 0;
  std::string str() const;  // "unix:/run/x.sock", "tcp:127.0.0.1:8080"
};

// Callbacks: a job's callback_url is POSTed the finished job, signed per Standard Webhooks.
struct CallbackConfig {
  std::string secret_file;                 // holds "whsec_<base64 key>"; empty: callbacks off
  std::vector<std::string> allowed_hosts;  // "host:port" (host lower-case); nothing else is called
  int max_attempts = 5;                    // deliveries tried, with backoff, before giving up
  double timeout_ms = 10000;               // each attempt
  double backoff_ms = 1000;                // the wait after the first failure; doubles each time
};

struct ServerConfig {
  std::vector<Listener> listen;
  unsigned socket_mode = 0660;
  std::string token_file;  // bearer tokens for TCP listeners (required when one is configured)
  std::string default_policy = "default";
  std::vector<std::string> allowed_policies;  // empty: only default_policy
  std::vector<std::string> policy_dirs;
  size_t concurrency = 0;  // 0: cores
  size_t queue_size = 256;
  size_t result_retention = 1000;
  uint64_t retention_bytes = 256ull << 20;
  uint64_t max_request_bytes = 8ull << 20;
  double header_timeout_ms = 10000;
  double idle_timeout_ms = 10000;             // a connection with no request (or an unread answer) this long is closed
  size_t max_connections = 256;               // per listener
  uint64_t max_buffered_bytes = 64ull << 20;  // request bodies buffered at once, all connections together
  double drain_timeout_ms = 30000;
  double max_wait_ms = 600000;  // longest GET .../wait?timeout_ms
  std::string log_format = "json";  // json | text
  std::string output_root;          // outputs of API jobs: ROOT/<job id>/<name>
  std::vector<std::string> local_roots;  // host folders API jobs may name as local sources
  std::string cache_dir;                 // compiled-code cache; "" = none ("default": per user)
  uint64_t cache_max_bytes = 1ull << 30;
  // With queue.nats set, serve is a gateway: jobs go to the NATS JetStream queue (README:
  // "Scaling out") instead of running here.
  QueueSettings queue;
  CallbackConfig callbacks;
};

// "unix:/path" or "tcp:HOST:PORT" (HOST must be a loopback address).
cfg::Expected<Listener> parse_listener(const std::string& s);

// Where `serve` keeps API jobs' outputs unless output_root is set: /var/lib/wasmjail/outputs
// for root, else $XDG_STATE_HOME/wasmjail/outputs (or ~/.local/state/wasmjail/outputs).
std::string default_output_root();

// The built-in defaults (what `serve` uses without --config).
ServerConfig default_server_config();
cfg::Expected<ServerConfig> load_server_config(const std::string& path);

}  // namespace wj
