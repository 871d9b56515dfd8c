#include "v8host/platform.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

// V8's own (exported) reseed entry point; not in the public headers.
namespace v8::base {
class OS {
 public:
  static void SetRandomMmapSeed(int64_t seed);
};
}  // namespace v8::base

namespace wj {

// An isolate's foreground task runner handed out before the platform started (Isolate::New
// in a warm pooled process asks for one and keeps it): tasks posted to it wait until
// start(), then go to the DefaultPlatform's runner for the same isolate.
class DeferredTaskRunner final : public v8::TaskRunner {
 public:
  void connect(std::shared_ptr<v8::TaskRunner> inner) {
    std::vector<Pending> pending;
    {
      std::lock_guard<std::mutex> lock(mu_);
      inner_ = std::move(inner);
      pending.swap(pending_);
    }
    for (auto& p : pending) {
      if (p.idle) inner_->PostIdleTask(std::move(p.idle));
      else if (p.delay > 0) inner_->PostDelayedTask(std::move(p.task), p.delay);
      else if (p.nestable) inner_->PostTask(std::move(p.task));
      else inner_->PostNonNestableTask(std::move(p.task));
    }
  }
  void PostTask(std::unique_ptr<v8::Task> task) override { post(std::move(task), 0, true); }
  void PostNonNestableTask(std::unique_ptr<v8::Task> task) override { post(std::move(task), 0, false); }
  void PostDelayedTask(std::unique_ptr<v8::Task> task, double delay) override { post(std::move(task), delay, true); }
  void PostNonNestableDelayedTask(std::unique_ptr<v8::Task> task, double delay) override {
    post(std::move(task), delay, false);
  }
  void PostIdleTask(std::unique_ptr<v8::IdleTask> task) override {
    std::shared_ptr<v8::TaskRunner> in;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!inner_) {
        pending_.push_back({nullptr, std::move(task), 0, true});
        return;
      }
      in = inner_;
    }
    in->PostIdleTask(std::move(task));
  }
  bool IdleTasksEnabled() override { return false; }
  bool NonNestableTasksEnabled() const override { return true; }
  bool NonNestableDelayedTasksEnabled() const override { return true; }

 private:
  struct Pending {
    std::unique_ptr<v8::Task> task;
    std::unique_ptr<v8::IdleTask> idle;
    double delay;
    bool nestable;
  };
  void post(std::unique_ptr<v8::Task> task, double delay, bool nestable) {
    std::shared_ptr<v8::TaskRunner> in;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!inner_) {
        pending_.push_back({std::move(task), nullptr, delay, nestable});
        return;
      }
      in = inner_;
    }
    if (delay > 0) nestable ? in->PostDelayedTask(std::move(task), delay) : in->PostNonNestableDelayedTask(std::move(task), delay);
    else nestable ? in->PostTask(std::move(task)) : in->PostNonNestableTask(std::move(task));
  }
  std::mutex mu_;
  std::shared_ptr<v8::TaskRunner> inner_;
  std::vector<Pending> pending_;
};

void reseed_address_hints() {
  int64_t seed = 0;
  while (seed == 0) {  // 0 means "keep the old seed" to V8
    if (getrandom(&seed, sizeof seed, 0) != static_cast<ssize_t>(sizeof seed)) std::abort();
  }
  v8::base::OS::SetRandomMmapSeed(seed);
}

DeferredPlatform::DeferredPlatform() {
  // libplatform's own choice for thread_pool_size 0: one fewer than the CPUs, at least 1.
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  workers_ = static_cast<int>(std::clamp<long>(cpus - 1, 1, 8));
}

DeferredPlatform::~DeferredPlatform() = default;

void DeferredPlatform::start() {
  if (inner_) return;
  inner_ = v8::platform::NewDefaultPlatform(workers_, v8::platform::IdleTaskSupport::kDisabled,
                                            v8::platform::InProcessStackDumping::kDisabled);
  std::map<v8::Isolate*, std::shared_ptr<DeferredTaskRunner>> deferred;
  {
    std::lock_guard<std::mutex> lock(mu_);
    deferred.swap(deferred_);
  }
  for (auto& [iso, runner] : deferred) runner->connect(inner_->GetForegroundTaskRunner(iso));
}

v8::Platform& DeferredPlatform::inner(const char* what) {
  if (!inner_) {
    // A thread or task queue asked for before start(): in the fork server this would put
    // a thread into a process that forks. Never continue.
    std::fprintf(stderr, "wasmjail: V8 asked for %s before the platform was started\n", what);
    std::abort();
  }
  return *inner_;
}

int DeferredPlatform::NumberOfWorkerThreads() {
  return workers_;
}

std::shared_ptr<v8::TaskRunner> DeferredPlatform::GetForegroundTaskRunner(v8::Isolate* isolate) {
  if (!inner_) {
    // No thread involved: the tasks wait in the runner until start().
    std::lock_guard<std::mutex> lock(mu_);
    auto& r = deferred_[isolate];
    if (!r) r = std::make_shared<DeferredTaskRunner>();
    return r;
  }
  return inner_->GetForegroundTaskRunner(isolate);
}

void DeferredPlatform::CallOnWorkerThread(std::unique_ptr<v8::Task> task) {
  inner("a worker thread").CallOnWorkerThread(std::move(task));
}

void DeferredPlatform::CallDelayedOnWorkerThread(std::unique_ptr<v8::Task> task, double delay_in_seconds) {
  inner("a worker thread").CallDelayedOnWorkerThread(std::move(task), delay_in_seconds);
}

bool DeferredPlatform::IdleTasksEnabled(v8::Isolate*) {
  return false;
}

std::unique_ptr<v8::JobHandle> DeferredPlatform::PostJob(v8::TaskPriority priority,
                                                         std::unique_ptr<v8::JobTask> job_task) {
  return inner("a job").PostJob(priority, std::move(job_task));
}

double DeferredPlatform::MonotonicallyIncreasingTime() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double DeferredPlatform::CurrentClockTimeMillis() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

v8::TracingController* DeferredPlatform::GetTracingController() {
  return &tracing_;
}

}  // namespace wj
