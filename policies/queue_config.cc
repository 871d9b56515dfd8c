#include "policies/queue_config.h"

#include <cctype>

namespace wj {

namespace {

bool valid_name(const std::string& s, bool allow_dot) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || (allow_dot && c == '.')))
      return false;
  return true;
}

}  // namespace

cfg::Expected<std::vector<std::string>> parse_nats_urls(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    std::string u = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (u.empty()) return cfg::Error{{}, "NATS URL list \"" + list + "\" has an empty entry"};
    if (u.rfind("nats://", 0) != 0 && u.rfind("tls://", 0) != 0)
      return cfg::Error{{}, "NATS URL \"" + u + "\" must start with nats:// or tls://"};
    for (char c : u)
      if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
        return cfg::Error{{}, "NATS URL \"" + u + "\" holds a space or a control character"};
    out.push_back(u);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (out.empty()) return cfg::Error{{}, "no NATS URL given"};
  return out;
}

void parse_queue_settings(const YAML::Node& n, const cfg::Doc& doc, QueueSettings* q) {
  cfg::check_map(n, doc, "queue",
                 {"nats", "user", "password", "creds_file", "nkey", "nkey_seed_file", "tls_ca", "tls_cert",
                  "tls_key", "stream", "subject_prefix", "results_bucket", "blobs_bucket", "replicas",
                  "duplicate_window", "connect_timeout", "result_ttl", "blob_ttl"});
  if (auto v = n["nats"]) {
    q->urls.clear();
    for (const std::string& s : cfg::as_string_list(v, doc, "queue.nats")) {
      auto u = parse_nats_urls(s);
      if (!u) doc.fail(v, "queue.nats: " + u.error().message);
      q->urls.insert(q->urls.end(), u.value().begin(), u.value().end());
    }
    if (q->urls.empty()) doc.fail(v, "queue.nats must name at least one server");
  }
  if (auto v = n["user"]) q->user = cfg::as_string(v, doc, "queue.user");
  if (auto v = n["password"]) q->password = cfg::as_string(v, doc, "queue.password");
  if (auto v = n["creds_file"]) q->creds_file = cfg::as_string(v, doc, "queue.creds_file");
  if (auto v = n["nkey"]) q->nkey = cfg::as_string(v, doc, "queue.nkey");
  if (auto v = n["nkey_seed_file"]) q->nkey_seed_file = cfg::as_string(v, doc, "queue.nkey_seed_file");
  if (auto v = n["tls_ca"]) q->tls_ca = cfg::as_string(v, doc, "queue.tls_ca");
  if (auto v = n["tls_cert"]) q->tls_cert = cfg::as_string(v, doc, "queue.tls_cert");
  if (auto v = n["tls_key"]) q->tls_key = cfg::as_string(v, doc, "queue.tls_key");
  if (q->tls_cert.empty() != q->tls_key.empty())
    doc.fail(n[q->tls_cert.empty() ? "tls_key" : "tls_cert"], "queue.tls_cert and queue.tls_key go together");
  int auths = !q->user.empty() + !q->creds_file.empty() + !q->nkey_seed_file.empty();
  if (auths > 1) doc.fail(n, "queue: give one of user/password, creds_file or nkey_seed_file");
  if (q->nkey.empty() != q->nkey_seed_file.empty())
    doc.fail(n[q->nkey.empty() ? "nkey_seed_file" : "nkey"],
             "queue.nkey and queue.nkey_seed_file go together");
  if (q->user.empty() != q->password.empty())
    doc.fail(n[q->user.empty() ? "password" : "user"], "queue.user and queue.password go together");
  auto name = [&](const char* key, std::string* out, bool dot) {
    if (auto v = n[key]) {
      *out = cfg::as_string(v, doc, std::string("queue.") + key);
      if (!valid_name(*out, dot))
        doc.fail(v, std::string("queue.") + key + " must be 1 to 64 letters, digits, '_' or '-'" +
                        (dot ? " or '.'" : ""));
    }
  };
  name("stream", &q->stream, false);
  name("subject_prefix", &q->subject_prefix, true);
  name("results_bucket", &q->results_bucket, false);
  name("blobs_bucket", &q->blobs_bucket, false);
  if (auto v = n["replicas"]) q->replicas = static_cast<int>(cfg::as_int(v, doc, "queue.replicas", 1, 5));
  if (auto v = n["duplicate_window"]) {
    q->duplicate_window_ms = cfg::as_duration_ms(v, doc, "queue.duplicate_window");
    if (q->duplicate_window_ms < 1000) doc.fail(v, "queue.duplicate_window must be at least 1s");
  }
  for (auto [key, out] : {std::pair{"result_ttl", &q->result_ttl_ms}, std::pair{"blob_ttl", &q->blob_ttl_ms}})
    if (auto v = n[key]) {
      *out = cfg::as_duration_ms(v, doc, std::string("queue.") + key);
      if (*out < 60000) doc.fail(v, std::string("queue.") + key + " must be at least 1m");
    }
  if (auto v = n["connect_timeout"]) {
    q->connect_timeout_ms = cfg::as_duration_ms(v, doc, "queue.connect_timeout");
    if (q->connect_timeout_ms <= 0) doc.fail(v, "queue.connect_timeout must be more than 0");
  }
}

}  // namespace wj
