#include "supervisor/executor.h"

#include <sys/random.h>

#include <algorithm>
#include <atomic>
#include <array>
#include <cstring>
#include <thread>


namespace wj {
namespace {

std::string new_job_id() {
  unsigned char b[8];
  if (getrandom(b, sizeof b, 0) != sizeof b) {
    static uint64_t counter = 0;  // getrandom cannot fail for 8 bytes; belt and braces
    uint64_t v = ++counter;
    std::memcpy(b, &v, sizeof b);
  }
  static const char* hex = "0123456789abcdef";
  std::string id = "j";
  for (unsigned char c : b) id += hex[c >> 4], id += hex[c & 15];
  return id;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// One preparation (fetching sources) on libuv's thread pool: downloads never block the loop.
struct PrepareWork {
  uv_work_t req;
  Executor* executor;
  std::shared_ptr<JobRecord> job;
  PrepareOptions prep;
  PreparedJob prepared;  // filled on the pool thread; handed to the job on the loop
  std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
  std::optional<std::string> error;
  std::weak_ptr<bool> alive;
  std::function<void(PrepareWork*)> after;
};

}  // namespace

const char* to_string(JobState s) {
  switch (s) {
    case JobState::kQueued: return "queued";
    case JobState::kRunning: return "running";
    case JobState::kDone: return "done";
  }
  return "unknown";
}

std::optional<std::string> options_for(const JobSpec& spec, const std::shared_ptr<const Policy>& policy,
                                       PrepareOptions* prep, RunOptions* run) {
  if (auto over = check_job_limits(spec.limits, policy->limits)) return over;
  const Limits lim = effective_limits(spec.limits, policy->limits);
  if (lim.module_bytes) prep->module_bytes_max = *lim.module_bytes;
  prep->stdin_bytes_max = lim.stdin_bytes.value_or(UINT64_MAX / 2);
  const FetchSettings& f = policy->fetch;
  prep->fetch.downloads_allowed = f.url_download.value_or(false);
  prep->fetch.allowed_hosts = f.allowed_hosts.value_or(std::vector<std::string>{});
  if (f.max_bytes) prep->fetch.max_bytes = *f.max_bytes;
  if (f.timeout_ms) prep->fetch.timeout_ms = *f.timeout_ms;
  run->module_bytes_max = prep->module_bytes_max;
  run->job_limits = spec.limits;
  run->v8_flags = v8_flags_for(policy->wasm);
  run->policy = policy;
  return std::nullopt;
}

Executor::Executor(uv_loop_t* loop, ExecutorConfig cfg) : loop_(loop), cfg_(std::move(cfg)), supervisor_(loop) {
  // Two jobs per core: a job process spends part of its life waiting (hand-offs, exit), and 2
  // per core gave 25-30% more hello jobs/s than 1 per core with no worse p50 (BENCHMARKS.md).
  if (cfg_.concurrency == 0) cfg_.concurrency = 2 * std::max(1u, std::thread::hardware_concurrency());
  supervisor_.set_warm_pool_size(cfg_.warm_pool < 0 ? cfg_.concurrency : static_cast<size_t>(cfg_.warm_pool));
}

Executor::~Executor() { *alive_ = false; }

std::shared_ptr<JobRecord> Executor::submit(Submission s, std::string* error) {
  if (draining_) {
    *error = "the executor is shutting down";
    return nullptr;
  }
  if (queue_.size() >= cfg_.queue_size) {
    ++stats_.rejected_queue_full;
    *error = "the queue is full (" + std::to_string(cfg_.queue_size) + " jobs waiting)";
    return nullptr;
  }
  auto job = std::make_shared<JobRecord>();
  job->id = new_job_id();
  job->policy_name = s.policy_name;
  job->owner = s.owner;
  for (const auto& o : s.spec.outputs)
    if (!o.publish_to.empty()) job->not_published.emplace_back(o.name, o.publish_to);
  job->submitted_at = std::chrono::system_clock::now();
  job->t_submitted = std::chrono::steady_clock::now();
  job->submission = std::move(s);
  jobs_[job->id] = job;
  queue_.push_back(job);
  if (cfg_.on_event) cfg_.on_event(*job, "queued");
  pump();
  return job;
}

std::shared_ptr<JobRecord> Executor::find(const std::string& id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<JobRecord>> Executor::recent(size_t max,
                                                         const std::function<bool(const JobRecord&)>& keep) const {
  std::vector<std::shared_ptr<JobRecord>> all;
  for (const auto& [id, j] : jobs_)
    if (!keep || keep(*j)) all.push_back(j);
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a->t_submitted > b->t_submitted; });
  if (all.size() > max) all.resize(max);
  return all;
}

uint64_t Executor::subscribe(const std::shared_ptr<JobRecord>& job, std::function<void(const JobEvent&)> cb) {
  if (job->state == JobState::kDone) {
    cb(JobEvent{JobEvent::kDone});
    return 0;
  }
  uint64_t t = next_token_++;
  job->subscribers[t] = std::move(cb);
  return t;
}

void Executor::unsubscribe(const std::shared_ptr<JobRecord>& job, uint64_t token) { job->subscribers.erase(token); }

void Executor::emit(const std::shared_ptr<JobRecord>& job, const JobEvent& e) {
  // Copy: a subscriber may unsubscribe itself (or others) while being called.
  auto subs = job->subscribers;
  for (auto& [t, cb] : subs)
    if (job->subscribers.count(t)) cb(e);
}

bool Executor::cancel(const std::string& id) {
  auto job = find(id);
  if (!job || job->state == JobState::kDone) return false;
  job->cancel_requested = true;
  auto q = std::find(queue_.begin(), queue_.end(), job);
  if (q != queue_.end()) {
    queue_.erase(q);
    Result r;
    r.status = Status::kCancelled;
    r.error = "cancelled before it started";
    finish(job, std::move(r));
    return true;
  }
  if (auto r = std::find(ready_.begin(), ready_.end(), job); r != ready_.end()) {
    ready_.erase(r);
    Result res;
    res.status = Status::kCancelled;
    res.error = "cancelled before it started";
    finish(job, std::move(res));
    return true;
  }
  if (job->control) {
    job->control->cancel();  // running
  } else if (auto p = preparing_cancel_.find(id); p != preparing_cancel_.end()) {
    // Being prepared: it ends now (its slot is free again); a download in flight is
    // aborted, and whatever the preparation still produces is dropped when it returns.
    p->second->store(true);
    preparing_cancel_.erase(p);
    Result res;
    res.status = Status::kCancelled;
    res.error = "cancelled before it started";
    finish(job, std::move(res));
  }
  return true;
}

void Executor::pump() {
  while (running_ < cfg_.concurrency && !queue_.empty() && !draining_) {
    auto job = queue_.front();
    queue_.pop_front();
    ++running_;  // the slot is held from preparation to the end of the run
    job->state = JobState::kRunning;
    job->t_started = std::chrono::steady_clock::now();
    auto* w = new PrepareWork{};
    w->req.data = w;
    w->executor = this;
    w->job = job;
    w->alive = alive_;
    if (auto err = options_for(job->submission.spec, job->submission.policy, &w->prep, &job->run_options)) {
      w->error = err;
    } else {
      w->prep.local_roots = cfg_.local_roots;
      w->prep.local_roots_enforced = cfg_.local_roots_enforced;
      if (!job->submission.output_dir.empty()) {
        w->prep.output_dir = job->submission.output_dir;
      } else if (cfg_.output_root_fd) {
        w->prep.output_dir = cfg_.output_root + "/" + job->id;
        w->prep.output_root = cfg_.output_root_fd;
        w->prep.job_dir_name = job->id;
      }
    }
    ++preparing_;
    w->prep.fetch.cancel = w->cancel;
    preparing_cancel_[job->id] = w->cancel;
    uv_queue_work(
        loop_, &w->req,
        [](uv_work_t* req) {
          auto* pw = static_cast<PrepareWork*>(req->data);
          if (!pw->error) pw->error = prepare_job(pw->job->submission.spec, pw->prep, &pw->prepared);
        },
        [](uv_work_t* req, int) {
          std::unique_ptr<PrepareWork> pw(static_cast<PrepareWork*>(req->data));
          if (pw->alive.expired()) {
            cleanup_staging(pw->prepared);
            return;
          }
          Executor* ex = pw->executor;
          --ex->preparing_;
          ex->preparing_cancel_.erase(pw->job->id);
          if (pw->job->state == JobState::kDone) {
            // Cancelled while it was being prepared: it has ended already.
            cleanup_staging(pw->prepared);
            ex->launch_ready();
            return;
          }
          pw->job->prepared = std::move(pw->prepared);
          if (pw->job->cancel_requested) {
            Result r;
            r.status = Status::kCancelled;
            r.error = "cancelled before it started";
            ex->finish(pw->job, std::move(r));
          } else if (pw->error) {
            Result r;
            r.status = Status::kInvalidJob;
            r.error = *pw->error;
            ex->finish(pw->job, std::move(r));
          } else {
            ex->ready_.push_back(pw->job);
          }
          ex->launch_ready();
        });
  }
}

// The job process is created with a raw clone (for its namespaces), which skips glibc's
// fork handlers: a thread-pool worker inside malloc at that moment would leave the child
// deadlocked. So children are only spawned while no preparation runs on the pool.
// With a fork server, no clone of this process is needed: a slow preparation (a download
// near its time limit) does not hold back jobs that are ready.
void Executor::launch_ready() {
  for (auto it = ready_.begin(); it != ready_.end();) {
    auto job = *it;
    if (job->state == JobState::kDone) {
      it = ready_.erase(it);
      continue;
    }
    if (pool_threads_busy() && !Supervisor::spawns_via_fork_server(job->prepared.job)) {
      ++it;
      continue;
    }
    it = ready_.erase(it);
    start_prepared(job, pool_threads_busy());
    it = ready_.begin();  // start_prepared may have changed the list (a job that failed at once)
  }
}

void Executor::start_prepared(const std::shared_ptr<JobRecord>& job, bool threads_busy) {
  RunOptions opts = job->run_options;
  opts.no_direct_clone = threads_busy;
  opts.cache_dir = cfg_.cache_dir;
  opts.cache_max_bytes = cfg_.cache_max_bytes;
  opts.background_compile_min_bytes = cfg_.background_compile_min_bytes;
  opts.background_compile = cfg_.background_compile;
  opts.background_compile_max_bytes = cfg_.background_compile_max_bytes;
  opts.background_ends_with_job = cfg_.background_ends_with_job;
  opts.detach_hot_compile = cfg_.detach_hot_compile;
  for (int i = 0; i < 3; ++i) opts.stdio_is_tty[i] = job->submission.stdio_is_tty[i];
  const Limits lim = effective_limits(job->submission.spec.limits, job->submission.policy->limits);
  const uint64_t caps[3] = {0, lim.stdout_bytes.value_or(opts.stdout_cap), lim.stderr_bytes.value_or(opts.stderr_cap)};
  auto kept = std::make_shared<std::array<uint64_t, 3>>();
  std::weak_ptr<JobRecord> weak = job;
  opts.on_output = [this, weak, caps, kept](Stream s, const char* data, size_t n) {
    auto j = weak.lock();
    if (!j) return;
    int k = static_cast<int>(s);
    uint64_t keep = (*kept)[k] < caps[k] ? std::min<uint64_t>(n, caps[k] - (*kept)[k]) : 0;
    if (keep) {
      (*kept)[k] += keep;
      j->log_bytes += keep;
      if (!j->log.empty() && j->log.back().first == s) j->log.back().second.append(data, keep);
      else j->log.emplace_back(s, std::string(data, keep));
    }
    emit(j, JobEvent{JobEvent::kOutput, s, data, n});
  };
  opts.answer_at_record = cfg_.answer_at_record;
  std::weak_ptr<bool> alive = alive_;
  opts.on_reaped = [this, weak, alive](const Usage& u) {
    if (alive.expired()) return;
    if (auto j = weak.lock()) {
      j->result.usage.cpu_ms = u.cpu_ms;
      j->result.usage.peak_rss_bytes = u.peak_rss_bytes;
      j->result.usage.cgroup_peak_memory_bytes = u.cgroup_peak_memory_bytes;
      j->result.usage.cgroup_cpu_ms = u.cgroup_cpu_ms;
      j->result.usage_pending = false;
    }
    stats_.job_cpu_ms_total += u.cpu_ms;
    stats_.job_peak_rss_max = std::max(stats_.job_peak_rss_max, u.peak_rss_bytes);
    --running_;  // the slot answered at the record was held until now
    pump();
    maybe_drained();
  };
  if (cfg_.on_event) cfg_.on_event(*job, "started");
  // Moved: the module bytes live once in this process (the job process is cloned from it, or
  // gets them from it), not also in the record until the job ends.
  auto control = supervisor_.start(std::move(job->prepared.job), std::move(opts), [this, weak](Result r) {
    if (auto j = weak.lock()) finish(j, std::move(r));
  });
  if (job->state != JobState::kDone) job->control = std::move(control);  // it may have failed at once
}

void Executor::finish(const std::shared_ptr<JobRecord>& job, Result r) {
  if (job->state == JobState::kDone) return;
  // Answered at the record: the slot stays taken until the reap (on_reaped).
  const bool held_slot = job->state == JobState::kRunning && !r.usage_pending;
  double queue_ms = job->state == JobState::kRunning ? std::chrono::duration<double, std::milli>(job->t_started - job->t_submitted).count()
                              : seconds_since(job->t_submitted) * 1000;
  r.timing.queue = queue_ms;
  r.timing.total += queue_ms;
  if (!r.usage_pending) {
    stats_.job_cpu_ms_total += r.usage.cpu_ms;
    stats_.job_peak_rss_max = std::max(stats_.job_peak_rss_max, r.usage.peak_rss_bytes);
  }
  job->result = std::move(r);
  job->state = JobState::kDone;
  job->outputs = job->prepared.outputs;
  job->control.reset();
  cleanup_staging(job->prepared);
  job->prepared.job = Job{};  // module bytes are no longer needed

  const std::string status(to_string(job->result.status));
  stats_.jobs_by_status[status]++;
  if (job->result.violation) stats_.violations_by_syscall[job->result.violation->syscall]++;
  if (stats_.latency_buckets_s.empty()) {
    stats_.latency_buckets_s = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    stats_.latency_counts.assign(stats_.latency_buckets_s.size(), 0);
  }
  double secs = seconds_since(job->t_submitted);
  for (size_t i = 0; i < stats_.latency_buckets_s.size(); ++i)
    if (secs <= stats_.latency_buckets_s[i]) stats_.latency_counts[i]++;
  stats_.latency_sum_s += secs;
  stats_.latency_count++;

  if (cfg_.on_event) cfg_.on_event(*job, "finished");
  emit(job, JobEvent{JobEvent::kDone});
  job->subscribers.clear();
  retain(job);
  if (held_slot) --running_;
  pump();
  maybe_drained();
}

void Executor::retain(const std::shared_ptr<JobRecord>& job) {
  done_order_.push_back(job->id);
  // What the record holds from now on is fixed: weigh it once, and give back the same.
  job->run_options = RunOptions{};  // the policy, sandbox layout and output callback are not needed any more
  job->retained_bytes = record_bytes(*job);
  retained_bytes_ += job->retained_bytes;
  while (!done_order_.empty() && (done_order_.size() > cfg_.retention || retained_bytes_ > cfg_.retention_bytes)) {
    auto it = jobs_.find(done_order_.front());
    if (it != jobs_.end()) {
      retained_bytes_ -= std::min(retained_bytes_, it->second->retained_bytes);
      jobs_.erase(it);
    }
    done_order_.pop_front();
  }
}

namespace {
uint64_t storage_bytes(const StorageSpec& s) {
  return sizeof s + s.name.size() + s.url.size() + s.source_path.size() + s.path.size() + s.checksum.size() +
         s.field.size();
}
}  // namespace

uint64_t record_bytes(const JobRecord& j) {
  uint64_t n = sizeof j + j.id.size() + j.policy_name.size() + j.owner.size();
  for (const auto& [stream, data] : j.log) n += sizeof(stream) + sizeof(data) + data.size();
  n += j.result.out.data.size() + j.result.err.data.size() + j.result.error.size();
  for (const auto& [name, host] : j.outputs) n += name.size() + host.size() + 64;
  const JobSpec& spec = j.submission.spec;
  n += storage_bytes(spec.entry_module) + spec.entry_point.size() + spec.base_dir.size();
  for (const auto& [k, v] : spec.env) n += k.size() + v.size() + 64;
  for (const auto& p : spec.parameters) n += p.size() + 32;
  if (spec.argv0) n += spec.argv0->size();
  for (const auto* list : {&spec.import_modules, &spec.inputs, &spec.outputs})
    for (const auto& s : *list) n += storage_bytes(s);
  n += j.submission.output_dir.size() + j.submission.owner.size();
  return n;
}

void Executor::drain(double drain_ms, std::function<void()> done) {
  draining_ = true;
  drained_cb_ = std::move(done);
  while (!queue_.empty()) cancel(queue_.front()->id);
  if (running_ > 0) {
    uv_timer_init(loop_, &drain_timer_);
    drain_timer_.data = this;
    drain_timer_open_ = true;
    uv_timer_start(
        &drain_timer_,
        [](uv_timer_t* t) {
          auto* ex = static_cast<Executor*>(t->data);
          for (auto& [id, j] : ex->jobs_)
            if (j->state == JobState::kRunning) ex->cancel(id);
        },
        static_cast<uint64_t>(drain_ms), 0);
  }
  maybe_drained();
}

void Executor::maybe_drained() {
  if (!draining_ || running_ > 0 || !drained_cb_) return;
  if (drain_timer_open_) {
    drain_timer_open_ = false;
    uv_timer_stop(&drain_timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
  }
  // Background compiles for the code cache must not keep a stopping server alive.
  supervisor_.cancel_background();
  supervisor_.shutdown_warm_pool();
  auto cb = std::move(drained_cb_);
  drained_cb_ = nullptr;
  cb();
}

}  // namespace wj
