#include "policies/worker_config.h"

#include <cstdlib>

namespace wj {

WorkerConfig default_worker_config() {
  WorkerConfig c;
  c.allowed_policies = {"default", "strict"};
  const char* tmp = getenv("TMPDIR");
  c.work_dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/wasmjail-worker";
  return c;
}

cfg::Expected<WorkerConfig> load_worker_config(const std::string& path) {
  cfg::Doc doc{path};
  try {
    YAML::Node n = cfg::load_file(path);
    cfg::check_map(n, doc, "the worker config",
                   {"queue", "concurrency", "ack_wait", "max_deliver", "drain_timeout", "default_policy",
                    "allowed_policies", "policy_dirs", "cache_dir", "cache_max_bytes", "max_blob_bytes",
                    "work_dir", "metrics_listen", "token_file", "log_format"});
    WorkerConfig c = default_worker_config();
    if (auto v = n["queue"]) parse_queue_settings(v, doc, &c.queue);
    if (auto v = n["concurrency"])
      c.concurrency = static_cast<size_t>(cfg::as_int(v, doc, "concurrency", 0, 1024));
    if (auto v = n["ack_wait"]) {
      c.ack_wait_ms = cfg::as_duration_ms(v, doc, "ack_wait");
      if (c.ack_wait_ms < 1000)
        doc.fail(v, "ack_wait must be at least 1s (in-progress acks are sent every third of it)");
    }
    if (auto v = n["max_deliver"])
      c.max_deliver = static_cast<int>(cfg::as_int(v, doc, "max_deliver", 1, 1000));
    if (auto v = n["drain_timeout"]) c.drain_timeout_ms = cfg::as_duration_ms(v, doc, "drain_timeout");
    if (auto v = n["default_policy"]) c.default_policy = cfg::as_string(v, doc, "default_policy");
    if (auto v = n["allowed_policies"]) c.allowed_policies = cfg::as_string_list(v, doc, "allowed_policies");
    if (auto v = n["policy_dirs"]) c.policy_dirs = cfg::as_string_list(v, doc, "policy_dirs");
    if (auto v = n["cache_dir"]) c.cache_dir = cfg::as_string(v, doc, "cache_dir");
    if (auto v = n["cache_max_bytes"]) c.cache_max_bytes = cfg::as_bytes(v, doc, "cache_max_bytes");
    if (auto v = n["max_blob_bytes"]) {
      c.max_blob_bytes = cfg::as_bytes(v, doc, "max_blob_bytes");
      if (c.max_blob_bytes == 0) doc.fail(v, "max_blob_bytes must be more than 0");
    }
    if (auto v = n["work_dir"]) c.work_dir = cfg::as_string(v, doc, "work_dir");
    if (auto v = n["metrics_listen"]) {
      for (const std::string& s : cfg::as_string_list(v, doc, "metrics_listen")) {
        auto l = parse_listener(s);
        if (!l) doc.fail(v, l.error().message);
        c.metrics_listen.push_back(l.value());
      }
    }
    if (auto v = n["token_file"]) c.token_file = cfg::as_string(v, doc, "token_file");
    if (auto v = n["log_format"]) {
      c.log_format = cfg::as_string(v, doc, "log_format");
      if (c.log_format != "json" && c.log_format != "text") doc.fail(v, "log_format must be json or text");
    }
    bool has_tcp = false;
    for (const auto& l : c.metrics_listen) has_tcp |= l.kind == Listener::kTcp;
    if (has_tcp && c.token_file.empty())
      doc.fail(n["metrics_listen"],
               "a TCP metrics listener requires token_file (a bearer token scrapers must send)");
    return c;
  } catch (const cfg::ConfigError& e) {
    return e.error;
  }
}

}  // namespace wj
