#include "v8host/platform.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

// V8's own (exported) reseed entry point; not in the public headers.
namespace v8::base {
class OS {
 public:
  static void SetRandomMmapSeed(int64_t seed);
};
}  // namespace v8::base

namespace wj {

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
  return inner("a foreground task runner").GetForegroundTaskRunner(isolate);
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
