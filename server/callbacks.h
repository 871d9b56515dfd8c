// Callbacks: when a job with a callback_url ends, the server POSTs the finished job (the
// JSON of GET /v1/jobs/{id}) there, signed per Standard Webhooks
// (https://www.standardwebhooks.com): headers webhook-id, webhook-timestamp and
// webhook-signature = "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)),
// the key being the base64 part of the "whsec_..." secret in callbacks.secret_file.
//
// Only hosts in callbacks.allowed_hosts (host:port) are called, over http or https; no
// redirect is followed. A delivery that fails (no answer, or not 2xx) is retried up to
// max_attempts times with doubling backoff, then logged and counted. Each attempt runs on
// libuv's thread pool (libcurl, blocking, bounded by callbacks.timeout); the Executor is
// told, so that no job process is cloned from this process meanwhile.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "policies/server_config.h"
#include "supervisor/executor.h"

namespace wj {

class ServerLog;

class CallbackSender {
 public:
  // Reads the secret; nullopt with `error` when callbacks are configured but unusable.
  static std::unique_ptr<CallbackSender> create(uv_loop_t* loop, Executor& executor,
                                                const CallbackConfig& cfg, ServerLog& log,
                                                std::string* error);
  ~CallbackSender();

  // Whether `url` may be called: http(s), a host:port in allowed_hosts, no credentials.
  // The reason when not.
  std::optional<std::string> check_url(const std::string& url) const;
  // Delivers `body` (a finished job) for job `job_id`; retries on its own.
  void deliver(const std::string& job_id, const std::string& url, std::string body);
  // Stops retry timers (server shutdown); deliveries in flight finish on their own.
  void shutdown();

  uint64_t delivered() const { return delivered_; }
  uint64_t failed() const { return failed_; }  // gave up after every attempt
  uint64_t attempts_failed() const { return attempts_failed_; }

  // "v1," + base64(HMAC-SHA256(key, id.timestamp.body)): exposed for tests.
  static std::string sign(const std::string& key, const std::string& id, const std::string& timestamp,
                          const std::string& body);

 private:
  struct Delivery;
  CallbackSender(uv_loop_t* loop, Executor& executor, CallbackConfig cfg, ServerLog& log, std::string key);
  void attempt(Delivery* d);
  void attempt_done(Delivery* d);

  uv_loop_t* loop_;
  Executor& executor_;
  CallbackConfig cfg_;
  ServerLog& log_;
  std::string key_;  // the decoded HMAC key
  uint64_t delivered_ = 0, failed_ = 0, attempts_failed_ = 0;
  bool shutting_down_ = false;
  size_t in_flight_ = 0;
  std::set<Delivery*> waiting_;  // between attempts (their backoff timer runs)
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace wj
