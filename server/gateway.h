// Gateway: `serve` with `queue: {nats: [...]}` in its config. The same HTTP endpoints as
// Api, but jobs are enqueued to the NATS JetStream stream instead of running here, and
// results, state, logs and cancellation go through NATS (README: "Scaling out").
//
//   POST /v1/jobs, POST /v1/run   parse and validate as Api does; local sources under the
//                                 config's local_roots are uploaded as blobs; publish
//   GET  /v1/jobs/{id}[/wait]     the stored result (KV); outputs unpacked under output_root
//   GET  /v1/jobs/{id}/logs       live output from PREFIX.logs.ID (only what comes after the
//                                 request), then the done event
//   DELETE /v1/jobs/{id}          a `cancelled` result (create) and PREFIX.cancel.ID
//
// Blocking NATS calls run on libuv's thread pool; NATS callbacks reach the loop through a
// uv_async handle.
#pragma once

#include <uv.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "policies/policy.h"
#include "policies/server_config.h"
#include "server/http_server.h"
#include "server/queue.h"

namespace wj {

class Gateway {
 public:
  Gateway(uv_loop_t* loop, NatsQueue& queue, const ServerConfig& cfg,
          std::map<std::string, std::shared_ptr<const Policy>> policies);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  void handle(const std::shared_ptr<HttpExchange>& ex);
  // Stops taking jobs (503) and closes the handles; `done` once nothing is pending.
  void stop(std::function<void()> done);

 private:
  struct Known {
    std::string policy, state = "queued", worker;
    std::string owner;  // the client that submitted it (HttpClient::owner)
    std::chrono::system_clock::time_point submitted_at;
  };
  struct LogStream;
  void submit(const std::shared_ptr<HttpExchange>& ex, bool wait);
  void get_job(const std::shared_ptr<HttpExchange>& ex, const std::string& id, double wait_ms);
  void stream_logs(const std::shared_ptr<HttpExchange>& ex, const std::string& id);
  void cancel_job(const std::shared_ptr<HttpExchange>& ex, const std::string& id);
  void list_jobs(const std::shared_ptr<HttpExchange>& ex);
  void on_nats();
  void remember(const std::string& id, const std::string& policy, const std::string& owner);
  // As serve: a client sees its own jobs, an admin every job. A job this gateway did not
  // submit is visible to admins only.
  bool visible(const std::string& id, const HttpClient& client) const;

  uv_loop_t* loop_;
  NatsQueue& queue_;
  const ServerConfig& cfg_;
  std::map<std::string, std::shared_ptr<const Policy>> policies_;
  std::map<std::string, Known> jobs_;
  std::deque<std::string> order_;
  natsSubscription* state_sub_ = nullptr;
  natsSubscription* logs_sub_ = nullptr;
  std::mutex mu_;
  std::deque<std::pair<std::string, std::string>> inbox_;  // (subject, data), guarded by mu_
  std::map<std::string, int> watched_;                     // job ids with a log reader, guarded by mu_
  uv_async_t async_;
  std::multimap<std::string, std::shared_ptr<LogStream>> streams_;  // by job id
  uint64_t http_requests_ = 0, submitted_ = 0;
  size_t pending_ = 0;  // thread-pool calls in flight
  bool stopping_ = false;
  std::function<void()> stopped_cb_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace wj
