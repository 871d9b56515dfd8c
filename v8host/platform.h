// DeferredPlatform: a v8::Platform whose worker threads start only when asked, so that
// V8 can be initialized in the fork server (a process that must stay single-threaded to
// fork safely) and the threads are created in each job's child, after its lock-down.
//
// Until start() the platform answers only what V8::Initialize and Isolate::New need (time,
// tracing, the worker count, an isolate's foreground task runner, whose tasks wait until
// start()); anything that would need a thread aborts, because running it in the fork server
// (or in a warm pooled process before its job's lock-down) would be a bug. After start()
// every call goes to a libplatform DefaultPlatform created then.
#pragma once

#include <libplatform/libplatform.h>
#include <v8-platform.h>

#include <map>
#include <memory>
#include <mutex>

namespace wj {

class DeferredTaskRunner;

// Reseeds V8's process-wide generator of mmap address hints from getrandom(2). A child
// forked after V8 was initialized calls it so no two jobs share a heap/code layout.
void reseed_address_hints();

class DeferredPlatform final : public v8::Platform {
 public:
  DeferredPlatform();
  ~DeferredPlatform() override;

  // Creates the worker threads (libplatform's DefaultPlatform). Idempotent.
  void start();
  bool started() const { return inner_ != nullptr; }
  // What v8::platform::PumpMessageLoop needs: the DefaultPlatform (after start()).
  v8::Platform* message_loop_platform() { return inner_.get(); }

  int NumberOfWorkerThreads() override;
  std::shared_ptr<v8::TaskRunner> GetForegroundTaskRunner(v8::Isolate* isolate) override;
  void CallOnWorkerThread(std::unique_ptr<v8::Task> task) override;
  void CallDelayedOnWorkerThread(std::unique_ptr<v8::Task> task, double delay_in_seconds) override;
  bool IdleTasksEnabled(v8::Isolate* isolate) override;
  std::unique_ptr<v8::JobHandle> PostJob(v8::TaskPriority priority,
                                         std::unique_ptr<v8::JobTask> job_task) override;
  double MonotonicallyIncreasingTime() override;
  double CurrentClockTimeMillis() override;
  v8::TracingController* GetTracingController() override;

 private:
  v8::Platform& inner(const char* what);

  int workers_;
  std::mutex mu_;
  std::map<v8::Isolate*, std::shared_ptr<DeferredTaskRunner>> deferred_;  // runners handed out before start()
  std::unique_ptr<v8::Platform> inner_;
  v8::TracingController tracing_;  // the base class: every category disabled
};

}  // namespace wj
