#include "server/route.h"

#include <cmath>
#include <cstdlib>

namespace wj {
namespace {

Route error(int status, const std::string& code, const std::string& message) {
  Route r;
  r.status = status;
  r.code = code;
  r.message = message;
  return r;
}

Route endpoint(Route::Endpoint e, std::string id = "") {
  Route r;
  r.endpoint = e;
  r.job_id = std::move(id);
  return r;
}

bool valid_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return false;
  return true;
}

}  // namespace

Route route_request(const std::string& m, const std::string& p) {
  auto not_allowed = [&] { return error(405, "method_not_allowed", m + " is not allowed on " + p); };
  auto only = [&](const char* method, Route::Endpoint e) {
    return m == method ? endpoint(e) : not_allowed();
  };
  if (p == "/healthz") return only("GET", Route::kHealth);
  if (p == "/metrics") return only("GET", Route::kMetrics);
  if (p == "/v1/openapi.json") return only("GET", Route::kOpenApi);
  if (p == "/v1/run") return only("POST", Route::kRun);
  if (p == "/v1/jobs") {
    if (m == "POST") return endpoint(Route::kSubmit);
    if (m == "GET") return endpoint(Route::kList);
    return not_allowed();
  }
  const std::string prefix = "/v1/jobs/";
  if (p.rfind(prefix, 0) == 0) {
    std::string rest = p.substr(prefix.size());
    std::string id = rest.substr(0, rest.find('/'));
    std::string sub = rest.size() > id.size() ? rest.substr(id.size()) : "";
    if (!valid_id(id)) return error(404, "not_found", "no job with id \"" + id + "\"");
    if (sub.empty()) {
      if (m == "GET") return endpoint(Route::kGetJob, id);
      if (m == "DELETE") return endpoint(Route::kCancelJob, id);
      Route r = not_allowed();
      r.job_id = id;
      return r;
    }
    Route::Endpoint e;
    if (sub == "/wait")
      e = Route::kWaitJob;
    else if (sub == "/logs")
      e = Route::kJobLogs;
    else
      return error(404, "not_found", "no such endpoint: " + p);
    if (m != "GET") {
      Route r = not_allowed();
      r.job_id = id;
      return r;
    }
    return endpoint(e, id);
  }
  return error(404, "not_found", "no such endpoint: " + p);
}

std::optional<double> wait_timeout_ms(const std::map<std::string, std::string>& query, double max_ms) {
  auto t = query.find("timeout_ms");
  if (t == query.end()) return 30000;
  char* end = nullptr;
  double v = std::strtod(t->second.c_str(), &end);
  const char c = t->second.empty() ? 0 : t->second[0];
  if (!((c >= '0' && c <= '9') || c == '.') || *end || !std::isfinite(v) || v < 0 || v > max_ms) return std::nullopt;
  return v;
}

}  // namespace wj
