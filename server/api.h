// Api: the HTTP/JSON API of `wasmjail serve` on top of an Executor.
//
//   POST   /v1/jobs              submit (body: a job spec, or {"job": spec, "policy": name}); 202
//   GET    /v1/jobs              recent jobs
//   GET    /v1/jobs/{id}         state, and the result when done
//   GET    /v1/jobs/{id}/wait    ?timeout_ms=N: answers when done or at the timeout
//   GET    /v1/jobs/{id}/logs    chunked NDJSON: output as it comes, then a final event
//   DELETE /v1/jobs/{id}         cancel
//   POST   /v1/run               submit and wait: one round trip
//   GET    /healthz, GET /metrics (Prometheus text)
//   GET    /v1/openapi.json      the OpenAPI 3.1 document of this API (server/openapi.json)
//
// POST /v1/jobs and /v1/run take an Idempotency-Key header (per client, remembered while
// the job it named is retained) and a callback_url (server/callbacks.h).
// Errors are {"error": {"code", "message"}} with 400/401/404/405/409/413/422/429/503.
//
// Every job belongs to the client that submitted it (HttpClient::owner: the unix peer's
// uid, or the TCP token's name). A client lists, reads, waits on, streams and cancels only
// its own jobs; another client's job is 404, as if it did not exist. Admins (root, the
// server's own user, a token marked admin) reach every job.
#pragma once

#include <uv.h>

#include <map>
#include <memory>
#include <string>

#include "policies/policy.h"
#include "policies/server_config.h"
#include "supervisor/executor.h"
#include "server/http_server.h"
#include "server/route.h"

namespace wj {

// Structured log lines for the server (one JSON object per line, or plain text).
// Text lines are `TS EVENT key=value ...`; a value that is empty or holds a space, '"',
// '=', '\\' or any control character is written in double quotes with C escapes (\n,
// \x1b, ...), so no field (a job's error quotes guest-chosen names) can start a line or
// pass for another field. JSON lines escape the same through the JSON encoder.
class ServerLog {
 public:
  explicit ServerLog(bool json, FILE* out = stderr) : json_(json), out_(out) {}
  void event(const std::string& name, const std::vector<std::pair<std::string, std::string>>& fields);
  void job(const JobRecord& j, const char* event);
  // One line (with its newline), as event() writes it.
  std::string format(const std::string& ts, const std::string& name,
                     const std::vector<std::pair<std::string, std::string>>& fields) const;

 private:
  bool json_;
  FILE* out_;
};

// The executor's Prometheus metrics (jobs by status, queue depth, running, latency
// histogram, violations, rejections, background compiles): served by `serve` and `worker`.
std::string executor_metrics(const Executor& executor);

// A text log value: as is when plain, else quoted and escaped (see ServerLog).
std::string log_text_value(const std::string& v);

class CallbackSender;

class Api {
 public:
  // `policies`: every policy jobs may name, loaded and resolved at start.
  Api(uv_loop_t* loop, Executor& executor, const ServerConfig& cfg,
      std::map<std::string, std::shared_ptr<const Policy>> policies);
  void handle(const std::shared_ptr<HttpExchange>& ex);
  // Enables callback_url (null: jobs naming one are refused).
  void set_callbacks(CallbackSender* callbacks) { callbacks_ = callbacks; }

 private:
  void submit(const std::shared_ptr<HttpExchange>& ex, bool wait);
  void get_job(const std::shared_ptr<HttpExchange>& ex, const std::string& id);
  void wait_job(const std::shared_ptr<HttpExchange>& ex, const std::string& id, double timeout_ms);
  void stream_logs(const std::shared_ptr<HttpExchange>& ex, const std::string& id);
  void cancel_job(const std::shared_ptr<HttpExchange>& ex, const std::string& id);
  void list_jobs(const std::shared_ptr<HttpExchange>& ex);
  void metrics(const std::shared_ptr<HttpExchange>& ex);
  std::optional<std::string> check_local_sources(const JobSpec& spec) const;
  static bool visible(const JobRecord& job, const HttpClient& client);

  uv_loop_t* loop_;
  Executor& executor_;
  const ServerConfig& cfg_;
  std::map<std::string, std::shared_ptr<const Policy>> policies_;
  uint64_t http_requests_ = 0;
  CallbackSender* callbacks_ = nullptr;
  // Idempotency-Key -> the job it created. Keyed by client + "\n" + key; an entry lives as
  // long as its job is retained by the Executor (pruned when the map outgrows retention).
  struct IdempotentSubmission {
    std::string job_id;
    std::string fingerprint;  // sha256 of the endpoint, the policy query and the body
  };
  std::map<std::string, IdempotentSubmission> idempotency_;
  void prune_idempotency();
};

}  // namespace wj
