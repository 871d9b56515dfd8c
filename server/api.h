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
//
// Errors are {"error": {"code", "message"}} with 400/401/404/405/409/413/429/503.
#pragma once

#include <uv.h>

#include <map>
#include <memory>
#include <string>

#include "policies/policy.h"
#include "policies/server_config.h"
#include "supervisor/executor.h"
#include "server/http_server.h"

namespace wj {

// Structured log lines for the server (one JSON object per line, or plain text).
class ServerLog {
 public:
  explicit ServerLog(bool json) : json_(json) {}
  void event(const std::string& name, const std::vector<std::pair<std::string, std::string>>& fields);
  void job(const JobRecord& j, const char* event);

 private:
  bool json_;
};

// The executor's Prometheus metrics (jobs by status, queue depth, running, latency
// histogram, violations, rejections, background compiles): served by `serve` and `worker`.
std::string executor_metrics(const Executor& executor);

class Api {
 public:
  // `policies`: every policy jobs may name, loaded and resolved at start.
  Api(uv_loop_t* loop, Executor& executor, const ServerConfig& cfg,
      std::map<std::string, std::shared_ptr<const Policy>> policies);
  void handle(const std::shared_ptr<HttpExchange>& ex);

 private:
  void submit(const std::shared_ptr<HttpExchange>& ex, bool wait);
  void get_job(const std::shared_ptr<HttpExchange>& ex, const std::string& id);
  void wait_job(const std::shared_ptr<HttpExchange>& ex, const std::string& id, double timeout_ms);
  void stream_logs(const std::shared_ptr<HttpExchange>& ex, const std::string& id);
  void cancel_job(const std::shared_ptr<HttpExchange>& ex, const std::string& id);
  void list_jobs(const std::shared_ptr<HttpExchange>& ex);
  void metrics(const std::shared_ptr<HttpExchange>& ex);
  std::optional<std::string> check_local_sources(const JobSpec& spec) const;

  uv_loop_t* loop_;
  Executor& executor_;
  const ServerConfig& cfg_;
  std::map<std::string, std::shared_ptr<const Policy>> policies_;
  uint64_t http_requests_ = 0;
};

}  // namespace wj
