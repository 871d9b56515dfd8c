#include "server/api.h"

#include <openssl/evp.h>
#include <sys/time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "server/callbacks.h"
#include "server/openapi.h"

namespace wj {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

std::string dump(const ojson& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

std::string iso8601(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  time_t secs = static_cast<time_t>(ms / 1000);
  tm tmv{};
  gmtime_r(&secs, &tmv);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tmv.tm_year + 1900, tmv.tm_mon + 1,
                tmv.tm_mday, tmv.tm_hour, tmv.tm_min, tmv.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

ojson job_json(const JobRecord& j) {
  ojson o;
  o["id"] = j.id;
  o["state"] = to_string(j.state);
  o["policy"] = j.policy_name;
  o["submitted_at"] = iso8601(j.submitted_at);
  if (j.state == JobState::kDone) {
    ojson r = to_json(j.result);
    if (!j.outputs.empty()) {
      ojson outs = ojson::object();
      for (const auto& [name, host] : j.outputs) outs[name] = host;
      r["outputs"] = outs;
    }
    if (!j.not_published.empty()) r["publishing"] = publishing_json(j.not_published);
    o["result"] = r;
  }
  return o;
}

void send_json(const std::shared_ptr<HttpExchange>& ex, int status, const ojson& body) {
  ex->respond(status, "application/json", dump(body) + "\n");
}

void send_error(const std::shared_ptr<HttpExchange>& ex, int status, const std::string& code, const std::string& msg) {
  ex->respond(status, "application/json", http_error_body(code, msg));
}

// yaml-cpp scans long scalars slowly (about 4 MB/s, twice per document), on the loop
// thread: one 8 MiB inline module held every other client for 2 s. The API body is JSON,
// already validated by nlohmann: its string literals longer than 64 KiB without escapes
// (inline modules as data: URLs) go to YAML as short placeholders, and are put back in the
// parsed tree. Only locations after such a string on its own line shift.
struct LongStrings {
  std::string text;  // the body with placeholders
  std::string tag;   // placeholders are TAG<index>
  std::vector<std::string> values;
};

LongStrings shorten_long_strings(const std::string& json_text) {
  constexpr size_t kLong = 64 * 1024;
  LongStrings out;
  std::random_device rd;
  char tag[64];
  std::snprintf(tag, sizeof tag, "wasmjail-long-string-%08x%08x-", rd(), rd());
  out.tag = tag;
  out.text.reserve(std::min(json_text.size(), kLong));
  size_t i = 0;
  while (i < json_text.size()) {
    if (json_text[i] != '"') {
      out.text += json_text[i++];
      continue;
    }
    size_t j = i + 1;
    bool escapes = false;
    while (j < json_text.size() && json_text[j] != '"') {
      if (json_text[j] == '\\') {
        escapes = true;
        ++j;
      }
      ++j;
    }
    size_t len = std::min(j, json_text.size()) - i - 1;
    if (len > kLong && !escapes) {
      out.text += "\"" + out.tag + std::to_string(out.values.size()) + "\"";
      out.values.push_back(json_text.substr(i + 1, len));
    } else {
      out.text.append(json_text, i, j - i + 1);
    }
    i = j + 1;
  }
  return out;
}

std::string sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

void restore_long_strings(const YAML::Node& root, const LongStrings& ls) {
  if (ls.values.empty()) return;
  std::vector<YAML::Node> todo{root};  // no recursion: the tree may be deep
  while (!todo.empty()) {
    YAML::Node n = todo.back();
    todo.pop_back();
    if (n.IsMap()) {
      for (auto it = n.begin(); it != n.end(); ++it) todo.push_back(it->second);
    } else if (n.IsSequence()) {
      for (auto it = n.begin(); it != n.end(); ++it) todo.push_back(*it);
    } else if (n.IsScalar() && n.Scalar().rfind(ls.tag, 0) == 0) {
      size_t k = std::strtoul(n.Scalar().c_str() + ls.tag.size(), nullptr, 10);
      if (k < ls.values.size()) n = ls.values[k];  // the same node: its location and tag stay
    }
  }
}

}  // namespace

std::string log_text_value(const std::string& v) {
  bool plain = !v.empty();
  for (unsigned char c : v)
    if (c <= 0x20 || c == 0x7f || c == '"' || c == '=' || c == '\\' || c >= 0x80) plain = false;
  if (plain) return v;
  std::string out = "\"";
  for (size_t i = 0; i < v.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(v[i]);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        // C0 controls, DEL, and the UTF-8 forms of C1 controls (U+0080..U+009F: a terminal may
        // act on them) are written as escapes; other bytes pass (UTF-8 text stays readable).
        if (c < 0x20 || c == 0x7f || (c == 0xc2 && i + 1 < v.size() && static_cast<unsigned char>(v[i + 1]) >= 0x80 &&
                                      static_cast<unsigned char>(v[i + 1]) <= 0x9f)) {
          char buf[8];
          if (c == 0xc2) std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(v[++i]));
          else std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string ServerLog::format(const std::string& ts, const std::string& name,
                              const std::vector<std::pair<std::string, std::string>>& fields) const {
  if (json_) {
    ojson o;
    o["ts"] = ts;
    o["event"] = name;
    for (const auto& [k, v] : fields) o[k] = v;
    return dump(o) + "\n";
  }
  std::string line = ts + " " + log_text_value(name);
  for (const auto& [k, v] : fields) line += " " + log_text_value(k) + "=" + log_text_value(v);
  return line + "\n";
}

void ServerLog::event(const std::string& name, const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string line = format(iso8601(std::chrono::system_clock::now()), name, fields);
  (void)!fwrite(line.data(), 1, line.size(), out_);
  fflush(out_);
}

void ServerLog::job(const JobRecord& j, const char* ev) {
  std::vector<std::pair<std::string, std::string>> f = {{"job", j.id}, {"policy", j.policy_name}};
  if (!j.owner.empty() && std::string(ev) == "queued") f.emplace_back("client", j.owner);
  if (j.state == JobState::kDone) {
    f.emplace_back("status", std::string(to_string(j.result.status)));
    f.emplace_back("exit_code", std::to_string(j.result.exit_code));
    char ms[32];
    std::snprintf(ms, sizeof ms, "%.1f", j.result.timing.total);
    f.emplace_back("duration_ms", ms);
    if (!j.result.error.empty()) f.emplace_back("error", j.result.error);
  }
  event(std::string("job_") + ev, f);
}

Api::Api(uv_loop_t* loop, Executor& executor, const ServerConfig& cfg,
         std::map<std::string, std::shared_ptr<const Policy>> policies)
    : loop_(loop), executor_(executor), cfg_(cfg), policies_(std::move(policies)) {}

bool Api::visible(const JobRecord& job, const HttpClient& client) {
  return client.admin || job.owner == client.owner;
}

void Api::handle(const std::shared_ptr<HttpExchange>& ex) {
  ++http_requests_;
  const HttpRequest& rq = ex->request();
  Route r = route_request(rq.method, rq.path);
  // Only submissions read a body. Any other request's body is dropped now, with its share
  // of the buffer budget: a long wait or log stream must not hold either while it lasts.
  if (r.endpoint != Route::kSubmit && r.endpoint != Route::kRun) ex->release_body();
  if (!r.job_id.empty()) {
    // Another client's job is not found, exactly like one that does not exist.
    auto job = executor_.find(r.job_id);
    if (!job || !visible(*job, rq.client)) return send_error(ex, 404, "not_found", "no job with id \"" + r.job_id + "\"");
  }
  switch (r.endpoint) {
    case Route::kError: return send_error(ex, r.status, r.code, r.message);
    case Route::kHealth:
      return send_json(ex, executor_.draining() ? 503 : 200,
                       ojson{{"status", executor_.draining() ? "draining" : "ok"},
                             {"running", executor_.running()},
                             {"queued", executor_.queued()},
                             {"concurrency", executor_.concurrency()}});
    case Route::kMetrics: return metrics(ex);
    case Route::kOpenApi: return ex->respond(200, "application/json", openapi_document());
    case Route::kRun: return submit(ex, true);
    case Route::kSubmit: return submit(ex, false);
    case Route::kList: return list_jobs(ex);
    case Route::kGetJob: return get_job(ex, r.job_id);
    case Route::kCancelJob: return cancel_job(ex, r.job_id);
    case Route::kJobLogs: return stream_logs(ex, r.job_id);
    case Route::kWaitJob: {
      auto timeout = wait_timeout_ms(rq.query, cfg_.max_wait_ms);
      if (!timeout)
        return send_error(ex, 400, "bad_request",
                          "timeout_ms must be a number of milliseconds from 0 to " +
                              std::to_string(static_cast<long>(cfg_.max_wait_ms)));
      return wait_job(ex, r.job_id, *timeout);
    }
  }
}

std::optional<std::string> Api::check_local_sources(const JobSpec& spec) const {
  // A job from the network must not name host files, except under the operator's roots.
  auto inside_roots = [&](const StorageSpec& s) -> std::optional<std::string> {
    if (s.source != StorageSource::kLocal) return std::nullopt;
    if (cfg_.local_roots.empty())
      return s.field + ": local sources (localDirectory) are not allowed through the API; use inline or urlDownload";
    if (s.source_path.empty() || s.source_path[0] != '/')
      return s.field + ": a local source_path must be absolute through the API";
    std::error_code ec;
    fs::path real = fs::weakly_canonical(s.source_path, ec);
    for (const std::string& root : cfg_.local_roots) {
      fs::path r = fs::weakly_canonical(root, ec);
      auto rel = real.lexically_relative(r);
      if (!rel.empty() && *rel.begin() != "..") return std::nullopt;
    }
    return s.field + ": " + s.source_path + " is outside the server's local_roots";
  };
  if (auto e = inside_roots(spec.entry_module)) return e;
  for (const auto& s : spec.import_modules)
    if (auto e = inside_roots(s)) return e;
  for (const auto& s : spec.inputs)
    if (auto e = inside_roots(s)) return e;
  for (const auto& s : spec.outputs)
    if (!s.source_path.empty()) return s.field + ": outputs of API jobs are written under the server's output_root";
  return std::nullopt;
}

void Api::prune_idempotency() {
  // Entries whose job the Executor no longer retains are forgotten (the retention period).
  if (idempotency_.size() < 2 * (cfg_.result_retention + cfg_.queue_size) + 64) return;
  for (auto it = idempotency_.begin(); it != idempotency_.end();)
    it = executor_.find(it->second.job_id) ? std::next(it) : idempotency_.erase(it);
}

void Api::submit(const std::shared_ptr<HttpExchange>& ex, bool wait) {
  const HttpRequest& rq = ex->request();
  // Idempotency-Key: the same key and request from the same client get the same job.
  std::string idem_key, fingerprint;
  if (auto h = rq.headers.find("idempotency-key"); h != rq.headers.end()) {
    const std::string& k = h->second;
    if (k.empty() || k.size() > 255 ||
        !std::all_of(k.begin(), k.end(), [](char c) { return c > 0x20 && c < 0x7f; }))
      return send_error(ex, 400, "bad_request", "Idempotency-Key must be 1 to 255 visible ASCII characters");
    idem_key = rq.client.owner + "\n" + k;  // per client: the unix uid or the TCP token name
    auto pq = rq.query.find("policy");
    fingerprint = sha256_hex(rq.path + "\n" + (pq == rq.query.end() ? "" : pq->second) + "\n" + rq.body);
    if (auto it = idempotency_.find(idem_key); it != idempotency_.end()) {
      if (auto job = executor_.find(it->second.job_id)) {
        if (it->second.fingerprint != fingerprint)
          return send_error(ex, 422, "idempotency_key_reused",
                            "Idempotency-Key \"" + k + "\" was used for a different request (job " + job->id +
                                "); use a new key for a new request");
        if (wait) return wait_job(ex, job->id, -1);
        return ex->respond(202, "application/json",
                           dump(ojson{{"id", job->id}, {"state", to_string(job->state)}}) + "\n",
                           {{"Idempotent-Replayed", "true"}});
      }
      idempotency_.erase(it);  // its job is no longer retained: the key is free again
    }
  }
  // Strict JSON first: the API speaks JSON, and its errors give line and column.
  try {
    nlohmann::json parsed = nlohmann::json::parse(rq.body);
    (void)parsed;
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range (a number too large)
    // nlohmann's message names the line and column: "parse error at line 1, column 19: ..."
    std::string what = e.what();
    if (auto at = what.find("parse error"); at != std::string::npos) what = what.substr(at);
    return send_error(ex, 400, "malformed_json", "request body: " + what);
  }
  cfg::Doc doc{"request"};
  YAML::Node root;
  try {
    LongStrings ls = shorten_long_strings(rq.body);
    ex->release_body();  // parsed: the text is not needed (a /v1/run may wait long), nor its buffer budget
    root = cfg::parse_text(ls.text, doc);
    restore_long_strings(root, ls);
  } catch (const cfg::ConfigError& e) {
    return send_error(ex, 400, "malformed_json", e.error.str());
  }
  std::string policy_name, callback_url;
  YAML::Node job_node = root;
  try {
    if (root.IsMap() && root["job"]) {
      cfg::check_map(root, doc, "the request", {"job", "policy", "callback_url"});
      if (root["policy"]) policy_name = cfg::as_string(root["policy"], doc, "policy");
      if (root["callback_url"]) callback_url = cfg::as_string(root["callback_url"], doc, "callback_url");
      job_node = root["job"];
    } else if (root.IsMap() && root["callback_url"]) {
      // A bare job may carry it too; it is the request's, not the job spec's.
      callback_url = cfg::as_string(root["callback_url"], doc, "callback_url");
      root.remove("callback_url");
    }
  } catch (const cfg::ConfigError& e) {
    return send_error(ex, 400, "invalid_job", e.error.str());
  }
  if (!callback_url.empty()) {
    if (!callbacks_)
      return send_error(ex, 400, "invalid_callback", "callback_url: callbacks are not enabled on this server (callbacks.secret_file)");
    if (auto why = callbacks_->check_url(callback_url)) return send_error(ex, 400, "invalid_callback", *why);
  }
  if (auto q = rq.query.find("policy"); q != rq.query.end()) {
    if (!policy_name.empty() && policy_name != q->second)
      return send_error(ex, 400, "bad_request", "the policy is given twice (body and query) with different names");
    policy_name = q->second;
  }
  if (policy_name.empty()) policy_name = cfg_.default_policy;
  auto pol = policies_.find(policy_name);
  if (pol == policies_.end()) {
    std::string names;
    for (const auto& [n, _] : policies_) names += (names.empty() ? "" : ", ") + n;
    return send_error(ex, 400, "unknown_policy", "policy \"" + policy_name + "\" is not offered here (offered: " + names + ")");
  }
  auto spec = parse_job_spec_node(job_node, "request", "/");
  if (!spec) return send_error(ex, 400, "invalid_job", spec.error().str());
  if (auto e = check_local_sources(spec.value())) return send_error(ex, 400, "invalid_job", *e);
  {
    PrepareOptions p;
    RunOptions o;
    if (auto over = options_for(spec.value(), pol->second, &p, &o)) return send_error(ex, 400, "invalid_job", *over);
  }
  Submission sub;
  sub.spec = std::move(spec.value());
  sub.policy = pol->second;
  sub.policy_name = policy_name;
  sub.owner = rq.client.owner;
  std::string err;
  auto job = executor_.submit(std::move(sub), &err);
  if (!job) {
    if (executor_.draining()) return send_error(ex, 503, "shutting_down", err);
    return send_error(ex, 429, "queue_full", err);
  }
  if (!idem_key.empty()) {
    prune_idempotency();
    idempotency_[idem_key] = IdempotentSubmission{job->id, fingerprint};
  }
  if (!callback_url.empty()) {
    std::weak_ptr<JobRecord> weak = job;
    CallbackSender* cb = callbacks_;
    executor_.subscribe(job, [weak, cb, callback_url](const JobEvent& e) {
      if (e.kind != JobEvent::kDone) return;
      if (auto j = weak.lock()) cb->deliver(j->id, callback_url, dump(job_json(*j)));
    });
  }
  if (!wait) return send_json(ex, 202, ojson{{"id", job->id}, {"state", to_string(job->state)}});
  wait_job(ex, job->id, -1);
}

void Api::get_job(const std::shared_ptr<HttpExchange>& ex, const std::string& id) {
  send_json(ex, 200, job_json(*executor_.find(id)));
}

void Api::wait_job(const std::shared_ptr<HttpExchange>& ex, const std::string& id, double timeout_ms) {
  auto job = executor_.find(id);
  if (job->state == JobState::kDone || timeout_ms == 0) return send_json(ex, 200, job_json(*job));
  // Whichever comes first: the job's end, the timeout, or the client leaving.
  struct Waiter {
    uv_timer_t timer;
    std::shared_ptr<HttpExchange> ex;
    std::shared_ptr<JobRecord> job;
    uint64_t token = 0;
    Executor* executor;
    bool done = false;
    void finish() {
      if (done) return;
      done = true;
      executor->unsubscribe(job, token);
      uv_timer_stop(&timer);
      send_json(ex, 200, job_json(*job));
      uv_close(reinterpret_cast<uv_handle_t*>(&timer), [](uv_handle_t* h) { delete static_cast<Waiter*>(h->data); });
    }
  };
  auto* w = new Waiter{};
  w->ex = ex;
  w->job = job;
  w->executor = &executor_;
  uv_timer_init(loop_, &w->timer);
  w->timer.data = w;
  w->token = executor_.subscribe(job, [w](const JobEvent& e) {
    if (e.kind == JobEvent::kDone) w->finish();
  });
  if (timeout_ms > 0)
    uv_timer_start(&w->timer, [](uv_timer_t* t) { static_cast<Waiter*>(t->data)->finish(); },
                   static_cast<uint64_t>(timeout_ms), 0);
  ex->on_abort([w] { w->finish(); });
}

void Api::stream_logs(const std::shared_ptr<HttpExchange>& ex, const std::string& id) {
  auto job = executor_.find(id);
  ex->begin_stream(200, "application/x-ndjson");
  auto chunk = [](Stream s, const char* data, size_t n) {
    return dump(ojson{{"stream", s == Stream::kStdout ? "stdout" : "stderr"}, {"data", std::string(data, n)}}) + "\n";
  };
  auto done_line = [](const JobRecord& j) {
    return dump(ojson{{"event", "done"}, {"status", to_string(j.result.status)}, {"exit_code", j.result.exit_code}}) + "\n";
  };
  // What was kept so far, then what comes.
  for (const auto& [s, data] : job->log)
    if (!ex->write_chunk(chunk(s, data.data(), data.size()))) return;
  if (job->state == JobState::kDone) {
    ex->write_chunk(done_line(*job));
    ex->end_stream();
    return;
  }
  auto token = std::make_shared<uint64_t>(0);
  std::weak_ptr<JobRecord> weak = job;
  *token = executor_.subscribe(job, [this, ex, weak, token, chunk, done_line](const JobEvent& e) {
    auto j = weak.lock();
    if (!j) return;
    if (e.kind == JobEvent::kOutput) {
      if (!ex->write_chunk(chunk(e.stream, e.data, e.size))) executor_.unsubscribe(j, *token);  // reader gone or too slow
      return;
    }
    ex->write_chunk(done_line(*j));
    ex->end_stream();
  });
  ex->on_abort([this, weak, token] {
    if (auto j = weak.lock()) executor_.unsubscribe(j, *token);
  });
}

void Api::cancel_job(const std::shared_ptr<HttpExchange>& ex, const std::string& id) {
  auto job = executor_.find(id);
  if (job->state == JobState::kDone)
    return send_error(ex, 409, "already_done", "job " + id + " already ended with status " + std::string(to_string(job->result.status)));
  executor_.cancel(id);
  send_json(ex, 202, ojson{{"id", id}, {"state", to_string(job->state)}, {"cancel_requested", true}});
}

void Api::list_jobs(const std::shared_ptr<HttpExchange>& ex) {
  size_t limit = 100;
  if (auto l = ex->request().query.find("limit"); l != ex->request().query.end()) {
    char* end = nullptr;
    long v = std::strtol(l->second.c_str(), &end, 10);
    if (l->second.empty() || *end || v < 1 || v > 10000) return send_error(ex, 400, "bad_request", "limit must be 1..10000");
    limit = static_cast<size_t>(v);
  }
  ojson list = ojson::array();
  const HttpClient& client = ex->client();
  for (const auto& j : executor_.recent(limit, [&](const JobRecord& r) { return visible(r, client); })) {
    ojson o{{"id", j->id}, {"state", to_string(j->state)}, {"policy", j->policy_name}, {"submitted_at", iso8601(j->submitted_at)}};
    if (j->state == JobState::kDone) o["status"] = to_string(j->result.status);
    list.push_back(o);
  }
  send_json(ex, 200, ojson{{"jobs", list}});
}

void Api::metrics(const std::shared_ptr<HttpExchange>& ex) {
  std::ostringstream o;
  o << executor_metrics(executor_);
  o << "# HELP wasmjail_callbacks_total Callback deliveries that ended, by outcome (failed: every attempt failed).\n"
       "# TYPE wasmjail_callbacks_total counter\n"
    << "wasmjail_callbacks_total{outcome=\"delivered\"} " << (callbacks_ ? callbacks_->delivered() : 0) << "\n"
    << "wasmjail_callbacks_total{outcome=\"failed\"} " << (callbacks_ ? callbacks_->failed() : 0) << "\n";
  o << "# HELP wasmjail_callback_attempts_failed_total Callback attempts that failed (retried or not).\n"
       "# TYPE wasmjail_callback_attempts_failed_total counter\n"
    << "wasmjail_callback_attempts_failed_total " << (callbacks_ ? callbacks_->attempts_failed() : 0) << "\n";
  o << "# HELP wasmjail_http_requests_total HTTP requests received.\n# TYPE wasmjail_http_requests_total counter\n"
    << "wasmjail_http_requests_total " << http_requests_ << "\n";
  ex->respond(200, "text/plain; version=0.0.4", o.str());
}

std::string executor_metrics(const Executor& executor_) {
  const ExecutorStats& st = executor_.stats();
  std::ostringstream o;
  o << "# HELP wasmjail_jobs_total Jobs that ended, by status.\n# TYPE wasmjail_jobs_total counter\n";
  for (const char* s : {"ok", "trap", "timeout", "cpu_limit", "memory_limit", "violation", "crashed", "setup_error",
                        "invalid_job", "cancelled", "internal_error"}) {
    auto it = st.jobs_by_status.find(s);
    o << "wasmjail_jobs_total{status=\"" << s << "\"} " << (it == st.jobs_by_status.end() ? 0 : it->second) << "\n";
  }
  o << "# HELP wasmjail_queue_depth Jobs waiting for a slot.\n# TYPE wasmjail_queue_depth gauge\n"
    << "wasmjail_queue_depth " << executor_.queued() << "\n";
  o << "# HELP wasmjail_running_jobs Jobs holding a slot (fetching or running).\n# TYPE wasmjail_running_jobs gauge\n"
    << "wasmjail_running_jobs " << executor_.running() << "\n";
  o << "# HELP wasmjail_background_compiles Compiles for the code cache running beside the jobs.\n"
       "# TYPE wasmjail_background_compiles gauge\n"
    << "wasmjail_background_compiles " << executor_.background_compiles() << "\n";
  o << "# HELP wasmjail_rejected_total Submissions refused because the queue was full.\n"
       "# TYPE wasmjail_rejected_total counter\n"
    << "wasmjail_rejected_total " << st.rejected_queue_full << "\n";
  o << "# HELP wasmjail_job_duration_seconds Time from submission to the end of a job.\n"
       "# TYPE wasmjail_job_duration_seconds histogram\n";
  for (size_t i = 0; i < st.latency_buckets_s.size(); ++i)
    o << "wasmjail_job_duration_seconds_bucket{le=\"" << st.latency_buckets_s[i] << "\"} " << st.latency_counts[i] << "\n";
  o << "wasmjail_job_duration_seconds_bucket{le=\"+Inf\"} " << st.latency_count << "\n"
    << "wasmjail_job_duration_seconds_sum " << st.latency_sum_s << "\n"
    << "wasmjail_job_duration_seconds_count " << st.latency_count << "\n";
  o << "# HELP wasmjail_violations_total Jobs ended for a forbidden system call, by syscall.\n"
       "# TYPE wasmjail_violations_total counter\n";
  for (const auto& [sc, n] : st.violations_by_syscall) o << "wasmjail_violations_total{syscall=\"" << sc << "\"} " << n << "\n";
  o << "# HELP wasmjail_job_cpu_seconds_total CPU time of reaped job processes (rusage; arrives after an "
       "answer given at the result record).\n# TYPE wasmjail_job_cpu_seconds_total counter\n"
    << "wasmjail_job_cpu_seconds_total " << st.job_cpu_ms_total / 1000.0 << "\n";
  o << "# HELP wasmjail_job_peak_rss_max_bytes The largest peak RSS of a reaped job process.\n"
       "# TYPE wasmjail_job_peak_rss_max_bytes gauge\n"
    << "wasmjail_job_peak_rss_max_bytes " << st.job_peak_rss_max << "\n";
  o << "# HELP wasmjail_warm_processes Warm job processes waiting for a job.\n# TYPE wasmjail_warm_processes gauge\n"
    << "wasmjail_warm_processes " << executor_.warm_idle() << "\n";
  return o.str();
}

}  // namespace wj
