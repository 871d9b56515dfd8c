#include "policies/server_config.h"

#include <unistd.h>

#include <arpa/inet.h>

namespace wj {

std::string Listener::str() const {
  return kind == kUnix ? "unix:" + path : "tcp:" + host + ":" + std::to_string(port);
}

namespace {

bool is_loopback(const std::string& host) {
  if (host == "localhost") return true;
  in_addr a4{};
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  in6_addr a6{};
  if (inet_pton(AF_INET6, host.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

}  // namespace

cfg::Expected<Listener> parse_listener(const std::string& s) {
  Listener l;
  if (s.rfind("unix:", 0) == 0) {
    l.path = s.substr(5);
    if (l.path.empty() || l.path.size() > 100) return cfg::Error{{}, "listener \"" + s + "\": a unix socket path of 1 to 100 bytes"};
    return l;
  }
  if (s.rfind("tcp:", 0) == 0) {
    l.kind = Listener::kTcp;
    std::string rest = s.substr(4);
    auto colon = rest.rfind(':');
    if (colon == std::string::npos) return cfg::Error{{}, "listener \"" + s + "\": expected tcp:HOST:PORT"};
    l.host = rest.substr(0, colon);
    if (l.host.size() > 2 && l.host.front() == '[' && l.host.back() == ']') l.host = l.host.substr(1, l.host.size() - 2);
    char* end = nullptr;
    long port = std::strtol(rest.c_str() + colon + 1, &end, 10);
    if (!end || *end || port < 1 || port > 65535) return cfg::Error{{}, "listener \"" + s + "\": port must be 1..65535"};
    l.port = static_cast<int>(port);
    if (!is_loopback(l.host))
      return cfg::Error{{}, "listener \"" + s + "\": TCP listeners must be on a loopback address (127.0.0.0/8, ::1)"};
    return l;
  }
  return cfg::Error{{}, "listener \"" + s + "\": expected unix:PATH or tcp:HOST:PORT"};
}

std::string default_output_root() {
  // Never a world-writable place: a local user could plant the folder (or a job's) first.
  if (geteuid() == 0) return "/var/lib/wasmjail/outputs";
  if (const char* x = getenv("XDG_STATE_HOME"); x && *x == '/') return std::string(x) + "/wasmjail/outputs";
  if (const char* h = getenv("HOME"); h && *h == '/') return std::string(h) + "/.local/state/wasmjail/outputs";
  return "";
}

ServerConfig default_server_config() {
  ServerConfig c;
  c.listen.push_back(Listener{Listener::kUnix, "/run/wasmjail/wasmjail.sock", "", 0});
  c.allowed_policies = {"default", "strict"};
  c.output_root = default_output_root();
  c.cache_dir = "default";
  return c;
}

cfg::Expected<ServerConfig> load_server_config(const std::string& path) {
  cfg::Doc doc{path};
  try {
    YAML::Node n = cfg::load_file(path);
    cfg::check_map(n, doc, "the server config",
                   {"listen", "socket_mode", "token_file", "default_policy", "allowed_policies", "policy_dirs",
                    "concurrency", "queue_size", "result_retention", "retention_bytes", "max_request_bytes",
                    "header_timeout", "idle_timeout", "max_connections", "max_buffered_request_bytes", "drain_timeout", "max_wait", "log_format", "output_root", "local_roots",
                    "cache_dir", "cache_max_bytes", "callbacks", "queue"});
    ServerConfig c = default_server_config();
    if (auto v = n["listen"]) {
      c.listen.clear();
      for (const std::string& s : cfg::as_string_list(v, doc, "listen")) {
        auto l = parse_listener(s);
        if (!l) doc.fail(v, l.error().message);
        c.listen.push_back(l.value());
      }
      if (c.listen.empty()) doc.fail(v, "listen must name at least one listener");
    }
    if (auto v = n["socket_mode"]) {
      std::string m = cfg::as_string(v, doc, "socket_mode");
      char* end = nullptr;
      long mode = std::strtol(m.c_str(), &end, 8);
      if (m.empty() || *end || mode < 0 || mode > 0777) doc.fail(v, "socket_mode must be an octal mode such as \"0660\"");
      c.socket_mode = static_cast<unsigned>(mode);
    }
    if (auto v = n["token_file"]) c.token_file = cfg::as_string(v, doc, "token_file");
    if (auto v = n["default_policy"]) c.default_policy = cfg::as_string(v, doc, "default_policy");
    if (auto v = n["allowed_policies"]) c.allowed_policies = cfg::as_string_list(v, doc, "allowed_policies");
    if (auto v = n["policy_dirs"]) c.policy_dirs = cfg::as_string_list(v, doc, "policy_dirs");
    if (auto v = n["concurrency"]) c.concurrency = static_cast<size_t>(cfg::as_int(v, doc, "concurrency", 0, 1024));
    if (auto v = n["queue_size"]) c.queue_size = static_cast<size_t>(cfg::as_int(v, doc, "queue_size", 0, 1000000));
    if (auto v = n["result_retention"])
      c.result_retention = static_cast<size_t>(cfg::as_int(v, doc, "result_retention", 0, 10000000));
    if (auto v = n["retention_bytes"]) c.retention_bytes = cfg::as_bytes(v, doc, "retention_bytes");
    if (auto v = n["max_request_bytes"]) {
      c.max_request_bytes = cfg::as_bytes(v, doc, "max_request_bytes");
      if (c.max_request_bytes == 0) doc.fail(v, "max_request_bytes must be more than 0");
    }
    if (auto v = n["header_timeout"]) c.header_timeout_ms = cfg::as_duration_ms(v, doc, "header_timeout");
    if (auto v = n["idle_timeout"]) {
      c.idle_timeout_ms = cfg::as_duration_ms(v, doc, "idle_timeout");
      if (c.idle_timeout_ms <= 0) doc.fail(v, "idle_timeout must be more than 0");
    }
    if (auto v = n["max_connections"])
      c.max_connections = static_cast<size_t>(cfg::as_int(v, doc, "max_connections", 1, 100000));
    if (auto v = n["max_buffered_request_bytes"]) c.max_buffered_bytes = cfg::as_bytes(v, doc, "max_buffered_request_bytes");
    if (auto v = n["drain_timeout"]) c.drain_timeout_ms = cfg::as_duration_ms(v, doc, "drain_timeout");
    if (auto v = n["max_wait"]) c.max_wait_ms = cfg::as_duration_ms(v, doc, "max_wait");
    if (auto v = n["log_format"]) {
      c.log_format = cfg::as_string(v, doc, "log_format");
      if (c.log_format != "json" && c.log_format != "text") doc.fail(v, "log_format must be json or text");
    }
    if (auto v = n["output_root"]) c.output_root = cfg::as_string(v, doc, "output_root");
    if (auto v = n["local_roots"]) c.local_roots = cfg::as_string_list(v, doc, "local_roots");
    if (auto v = n["cache_dir"]) c.cache_dir = cfg::as_string(v, doc, "cache_dir");
    if (auto v = n["cache_max_bytes"]) c.cache_max_bytes = cfg::as_bytes(v, doc, "cache_max_bytes");
    if (auto v = n["queue"]) {
      parse_queue_settings(v, doc, &c.queue);
      if (c.queue.urls.empty()) doc.fail(v, "queue needs nats: [URL, ...] (serve is then a gateway to the queue)");
    }
    if (auto cb = n["callbacks"]; cb && !cb.IsNull()) {
      cfg::check_map(cb, doc, "callbacks", {"secret_file", "allowed_hosts", "max_attempts", "timeout", "backoff"});
      CallbackConfig& k = c.callbacks;
      if (auto v = cb["secret_file"]) k.secret_file = cfg::as_string(v, doc, "callbacks.secret_file");
      if (auto v = cb["allowed_hosts"]) {
        for (std::string h : cfg::as_string_list(v, doc, "callbacks.allowed_hosts")) {
          auto colon = h.rfind(':');
          char* end = nullptr;
          long port = colon == std::string::npos ? 0 : std::strtol(h.c_str() + colon + 1, &end, 10);
          if (colon == std::string::npos || colon == 0 || !end || *end || port < 1 || port > 65535)
            doc.fail(v, "callbacks.allowed_hosts: \"" + h + "\" must be host:port (e.g. hooks.example.com:443)");
          for (char& ch : h) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          k.allowed_hosts.push_back(h);
        }
      }
      if (auto v = cb["max_attempts"]) k.max_attempts = static_cast<int>(cfg::as_int(v, doc, "callbacks.max_attempts", 1, 20));
      if (auto v = cb["timeout"]) k.timeout_ms = cfg::as_duration_ms(v, doc, "callbacks.timeout");
      if (auto v = cb["backoff"]) k.backoff_ms = cfg::as_duration_ms(v, doc, "callbacks.backoff");
      if (k.timeout_ms <= 0 || k.timeout_ms > 300000) doc.fail(cb, "callbacks.timeout must be more than 0 and at most 5m");
      if (k.backoff_ms < 0 || k.backoff_ms > 3600000) doc.fail(cb, "callbacks.backoff must be at most 1h");
      if (k.secret_file.empty() && !k.allowed_hosts.empty())
        doc.fail(cb, "callbacks.allowed_hosts needs callbacks.secret_file (every callback is signed)");
    }
    if (c.header_timeout_ms <= 0) doc.fail(n["header_timeout"], "header_timeout must be more than 0");
    if (c.max_buffered_bytes < c.max_request_bytes)
      doc.fail(n["max_buffered_request_bytes"] ? n["max_buffered_request_bytes"] : n["max_request_bytes"],
               "max_buffered_request_bytes must be at least max_request_bytes (one full request must fit)");
    bool has_tcp = false;
    for (const auto& l : c.listen) has_tcp |= l.kind == Listener::kTcp;
    if (has_tcp && c.token_file.empty())
      doc.fail(n["listen"], "a TCP listener requires token_file (a bearer token clients must send)");
    return c;
  } catch (const cfg::ConfigError& e) {
    return e.error;
  }
}

}  // namespace wj
