// Executor: the one C++ API every frontend uses to run jobs. It queues submissions
// (bounded), runs at most `concurrency` at once on a libuv loop, fetches each job's
// sources off the loop thread, keeps recent results, fans out live output, and cancels.
//
//   Executor ex(loop, cfg);
//   auto job = ex.submit(std::move(submission), &error);   // nullptr: queue full/draining
//   ex.subscribe(job, [](const JobEvent& e) { ... });       // output chunks, then kDone
//   ex.cancel(job->id);
#pragma once

#include <uv.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "policies/jobspec.h"
#include "policies/policy.h"
#include "supervisor/result.h"
#include "storage/storage.h"
#include "supervisor/supervisor.h"

namespace wj {

struct ExecutorConfig {
  size_t concurrency = 0;           // 0: the number of cores
  // Warm job processes kept per policy (supervisor/warm_pool.h): -1 = the concurrency, 0 = none.
  int64_t warm_pool = 0;
  // Answer at the result record (RunOptions::answer_at_record; serve): the job is done when
  // its final record arrives; its concurrency slot is held until the reap, which fills in
  // usage.cpu_ms and usage.peak_rss_bytes of the stored record.
  bool answer_at_record = false;
  size_t queue_size = 256;          // queued (not yet running) jobs; more are refused
  size_t retention = 1000;          // finished jobs kept for GET /v1/jobs/{id}
  uint64_t retention_bytes = 256ull << 20;  // ... and their whole records (spec, output, result), together
  std::string output_root;          // outputs of jobs without an output dir: ROOT/<id>/<name>
  SharedFd output_root_fd;          // output_root, opened and checked (open_private_dir)
  std::vector<std::string> local_roots;  // local sources must lie beneath these...
  bool local_roots_enforced = false;     // ...(else, with none, any path: the local user's job)
  std::string cache_dir;            // compiled-code cache (empty: none)
  uint64_t cache_max_bytes = 1ull << 30;
  // RunOptions::background_compile_min_bytes for every job (serve: 256 KiB unless
  // WASMJAIL_BACKGROUND_COMPILE=off; 0 for a one-shot exec, which waits for the end anyway).
  size_t background_compile_min_bytes = 0;
  // RunOptions::background_compile, _max_bytes and background_ends_with_job for every job.
  bool background_compile = false;
  size_t background_compile_max_bytes = SIZE_MAX;
  bool background_ends_with_job = false;
  // RunOptions::detach_hot_compile for every job (one-shot exec).
  bool detach_hot_compile = false;
  // Life-cycle events for logs: "queued", "started", "finished".
  std::function<void(const struct JobRecord&, const char* event)> on_event;
};

// Everything needed to run one job: the validated spec, the policy it runs under.
struct Submission {
  JobSpec spec;
  std::shared_ptr<const Policy> policy;
  std::string policy_name;
  std::string output_dir;  // empty: output_root/<id>
  bool stdio_is_tty[3] = {false, false, false};
  std::string owner;       // who submitted it ("uid:N", "token:NAME"); "" for the command line
};

enum class JobState { kQueued, kRunning, kDone };
const char* to_string(JobState s);

struct JobEvent {
  enum Kind { kOutput, kDone } kind;
  Stream stream = Stream::kStdout;
  const char* data = nullptr;
  size_t size = 0;
};

struct JobRecord {
  std::string id;
  JobState state = JobState::kQueued;
  std::string policy_name;
  std::string owner;  // Submission::owner
  Result result;  // final once state is kDone
  std::vector<std::pair<std::string, std::string>> outputs;  // name -> host folder
  // Outputs the job asked to have published (name -> "IPFS", "s3", ...): written locally
  // like every output, never published (the orchestrator's job). See publishing_json().
  std::vector<std::pair<std::string, std::string>> not_published;
  std::chrono::system_clock::time_point submitted_at;
  std::chrono::steady_clock::time_point t_submitted, t_started;
  // Output so far, in arrival order, kept up to the job's caps (for late log readers).
  std::vector<std::pair<Stream, std::string>> log;
  uint64_t log_bytes = 0;
  bool cancel_requested = false;
  uint64_t retained_bytes = 0;  // what the record weighs, counted against retention_bytes once done

 private:
  friend class Executor;
  friend uint64_t record_bytes(const JobRecord& job);
  Submission submission;
  std::shared_ptr<JobControl> control;
  std::map<uint64_t, std::function<void(const JobEvent&)>> subscribers;
  PreparedJob prepared;
  RunOptions run_options;
};

struct ExecutorStats {
  std::map<std::string, uint64_t> jobs_by_status;
  std::map<std::string, uint64_t> violations_by_syscall;
  std::vector<double> latency_buckets_s;  // upper bounds
  std::vector<uint64_t> latency_counts;   // cumulative per bucket
  double latency_sum_s = 0;
  uint64_t latency_count = 0;
  uint64_t rejected_queue_full = 0;
  double job_cpu_ms_total = 0;  // every reaped job process's CPU time (rusage)
  uint64_t job_peak_rss_max = 0;  // the largest peak RSS of a reaped job process
};

class Executor {
 public:
  Executor(uv_loop_t* loop, ExecutorConfig cfg);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Queues a job. nullptr (with `error`) when the queue is full or the executor drains.
  std::shared_ptr<JobRecord> submit(Submission s, std::string* error);
  std::shared_ptr<JobRecord> find(const std::string& id) const;
  // Newest first; only the jobs `keep` accepts, when given.
  std::vector<std::shared_ptr<JobRecord>> recent(size_t max,
                                                 const std::function<bool(const JobRecord&)>& keep = nullptr) const;

  // Live output and the final kDone event. A subscriber added to a finished job gets only
  // kDone. Returns a token for unsubscribe().
  uint64_t subscribe(const std::shared_ptr<JobRecord>& job, std::function<void(const JobEvent&)> cb);
  void unsubscribe(const std::shared_ptr<JobRecord>& job, uint64_t token);

  // Cancels a queued or running job (status `cancelled`). False when unknown or done.
  bool cancel(const std::string& id);

  // Stops taking jobs; queued jobs are cancelled; running ones may finish for `drain_ms`,
  // then are cancelled. `done` runs once nothing is running.
  void drain(double drain_ms, std::function<void()> done);

  size_t queued() const { return queue_.size(); }
  size_t running() const { return running_; }
  size_t concurrency() const { return cfg_.concurrency; }
  bool draining() const { return draining_; }
  const ExecutorStats& stats() const { return stats_; }
  // Work a frontend runs on libuv's thread pool (the server's callback deliveries). While
  // any runs, job processes are created only by the fork server, never cloned from this
  // process (see launch_ready); without a fork server, job starts wait for it to end.
  void pool_work_started() { ++pool_work_; }
  void pool_work_finished() {
    --pool_work_;
    launch_ready();
  }
  // Compiles for the code cache running beside the jobs (outside the concurrency limit).
  size_t background_compiles() const { return supervisor_.background_compiles(); }
  size_t warm_idle() const { return supervisor_.warm_idle(); }

 private:
  void pump();
  void start_prepared(const std::shared_ptr<JobRecord>& job, bool threads_busy);
  void launch_ready();
  void finish(const std::shared_ptr<JobRecord>& job, Result r);
  void emit(const std::shared_ptr<JobRecord>& job, const JobEvent& e);
  void retain(const std::shared_ptr<JobRecord>& job);
  void maybe_drained();

  uv_loop_t* loop_;
  ExecutorConfig cfg_;
  Supervisor supervisor_;
  std::deque<std::shared_ptr<JobRecord>> queue_;
  std::map<std::string, std::shared_ptr<JobRecord>> jobs_;  // queued, running, retained
  std::deque<std::string> done_order_;
  uint64_t retained_bytes_ = 0;
  size_t running_ = 0;
  size_t preparing_ = 0;                           // preparations on the thread pool
  size_t pool_work_ = 0;                           // a frontend's work on the thread pool
  // Another thread may be inside malloc: job processes only from the fork server.
  bool pool_threads_busy() const { return preparing_ > 0 || pool_work_ > 0; }
  std::map<std::string, std::shared_ptr<std::atomic<bool>>> preparing_cancel_;  // job id -> abort flag
  std::deque<std::shared_ptr<JobRecord>> ready_;   // prepared, waiting for the pool to be idle
  uint64_t next_token_ = 1;
  bool draining_ = false;
  std::function<void()> drained_cb_;
  uv_timer_t drain_timer_;
  bool drain_timer_open_ = false;
  ExecutorStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The memory a finished job's record holds: its spec (inline modules are data: URLs), its
// kept output, result and outputs.
uint64_t record_bytes(const JobRecord& job);

// Builds the run options a job gets under its policy (limits, V8 flags, fetch rules).
// Fails with a message when the job asks for more than the policy allows.
std::optional<std::string> options_for(const JobSpec& spec, const std::shared_ptr<const Policy>& policy, PrepareOptions* prep,
                                       RunOptions* run);

}  // namespace wj
