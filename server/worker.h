// Worker: `wasmjail worker`'s engine. Pulls jobs from the JetStream WorkQueue stream (a
// durable pull consumer shared by every worker), runs each on the Executor exactly as
// `serve` does, stores the result (KV create: the first result wins), then acks.
//
//   - fetches only as many messages as it has free slots;
//   - sends in-progress acks every third of the ack wait while a job runs;
//   - a message delivered more than max_deliver times ends `failed` and is terminated;
//     a malformed one ends in an error result and is terminated;
//   - publishes live output on PREFIX.logs.ID and obeys PREFIX.cancel.ID;
//   - drain(): stop fetching, let running jobs finish within the drain timeout, then nak
//     the rest so that another worker takes them at once.
//
// Threads: a fetcher thread blocks in natsSubscription_Fetch; blocking NATS calls (KV,
// blobs) run on libuv's thread pool; everything else, and every Executor call, runs on the
// loop thread. Messages cross over through uv_async handles.
#pragma once

#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "policies/policy.h"
#include "policies/worker_config.h"
#include "server/api.h"
#include "server/queue.h"
#include "supervisor/executor.h"

namespace wj {

struct QueueStats {
  uint64_t fetched = 0, acked = 0, naked = 0, redelivered = 0, terminated = 0, duplicates = 0,
           failed_max_deliver = 0;
};

class Worker {
 public:
  Worker(uv_loop_t* loop, Executor& executor, NatsQueue& queue, const WorkerConfig& cfg,
         std::map<std::string, std::shared_ptr<const Policy>> policies, ServerLog& log);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Binds the durable pull consumer and starts fetching. An error when the consumer
  // cannot be created or bound (e.g. another worker created it with another ack wait).
  std::optional<std::string> start();
  // SIGTERM: see above. `done` runs once every job is acked or naked and handles are closed.
  void drain(std::function<void()> done);

  std::string metrics() const;  // the executor's metrics plus the queue's
  size_t in_flight() const;

  struct Delivery;

 private:
  void fetch_loop();
  void on_inbox();
  void on_cancels();
  void begin(const std::shared_ptr<Delivery>& d);
  void run(const std::shared_ptr<Delivery>& d);
  void complete(const std::shared_ptr<Delivery>& d, Result r);
  void store(const std::shared_ptr<Delivery>& d, std::string result_json, bool term);
  void settle(const std::shared_ptr<Delivery>& d, const char* how);
  void maybe_drained();

  uv_loop_t* loop_;
  Executor& executor_;
  NatsQueue& queue_;
  const WorkerConfig& cfg_;
  std::map<std::string, std::shared_ptr<const Policy>> policies_;
  ServerLog& log_;
  std::string name_;  // hostname:pid, in results and logs
  size_t slots_;

  natsSubscription* pull_ = nullptr;
  natsSubscription* cancel_sub_ = nullptr;
  std::thread fetcher_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  size_t in_flight_ = 0;  // fetched and not yet acked/naked/terminated (guarded by mu_)
  bool stop_fetching_ = false;
  std::deque<natsMsg*> inbox_;          // guarded by mu_
  std::deque<std::string> cancel_ids_;  // guarded by mu_
  uv_async_t inbox_async_, cancel_async_;

  std::map<std::string, std::shared_ptr<Delivery>> active_;  // by job id (loop thread)
  QueueStats stats_;                                         // loop thread
  std::atomic<uint64_t> fetched_{0};
  bool draining_ = false, executor_drained_ = false, closed_ = false;
  std::function<void()> drained_cb_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace wj
