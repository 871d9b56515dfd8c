// route_request: which API endpoint an HTTP request names (method and decoded path), with
// no side effects, so that the whole request path (parser and routing) can be fuzzed.
#pragma once

#include <map>
#include <optional>
#include <string>

namespace wj {

struct Route {
  enum Endpoint {
    kHealth,     // GET /healthz
    kMetrics,    // GET /metrics
    kOpenApi,    // GET /v1/openapi.json
    kRun,        // POST /v1/run
    kSubmit,     // POST /v1/jobs
    kList,       // GET /v1/jobs
    kGetJob,     // GET /v1/jobs/{id}
    kCancelJob,  // DELETE /v1/jobs/{id}
    kWaitJob,    // GET /v1/jobs/{id}/wait
    kJobLogs,    // GET /v1/jobs/{id}/logs
    kError,      // answer `status` with `code` and `message`
  } endpoint = kError;
  std::string job_id;  // the job endpoints
  int status = 0;
  std::string code, message;
};

// A job id is 1 to 64 of [A-Za-z0-9_-]; anything else in its place is 404, never looked up.
// A job endpoint with a wrong method is 405 only for a well-formed id (the caller still
// checks that the job exists and is the client's before answering for it).
Route route_request(const std::string& method, const std::string& path);

// The `timeout_ms` of GET /v1/jobs/{id}/wait from the query: 30,000 when absent; nullopt
// (a 400: "timeout_ms must be a number of milliseconds from 0 to MAX") when it is not a
// finite number from 0 to `max_ms`.
std::optional<double> wait_timeout_ms(const std::map<std::string, std::string>& query, double max_ms);

}  // namespace wj
