// WarmPool: job processes created ahead of demand, per policy (per WarmSpec key), so that a
// job's start is a message to a process that already has its namespaces and its V8 isolate
// and context (supervisor/zygote.h, "Warm pool"). Each process takes exactly one job and is
// never reused. Refills run off the critical path: requested from a timer after a take,
// without waiting for the fork server's reply (read when its socket turns readable), and
// the processes prepare at a lower CPU priority.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "supervisor/zygote.h"

namespace wj {

class WarmPool {
 public:
  // A warm process handed to a job: send the job on `channel` (send_job_to_warm), then close it.
  struct Taken {
    pid_t pid = -1;
    int channel = -1;
    sandbox::CloneResult clone;  // how it was created (namespaces applied and skipped)
  };

  explicit WarmPool(uv_loop_t* loop);
  ~WarmPool();  // kills and reaps the idle processes
  WarmPool(const WarmPool&) = delete;
  WarmPool& operator=(const WarmPool&) = delete;

  // Idle processes kept per policy key (0: no pool). At most kMaxKeys keys are kept; the
  // least recently used one is dropped beyond that.
  void set_size(size_t n) { size_ = n; }
  size_t size() const { return size_; }

  // A warm process prepared for `spec` (key: encode_warm_spec), preferring one that has
  // finished preparing; nullopt when there is none. Marks the key as wanted: later fills
  // keep it at size(). `fill_if_empty`: with none idle, create one now and take it (one-shot
  // commands under WASMJAIL_POOL=on, to run their job in a pooled process).
  std::optional<Taken> take(const WarmSpec& spec, bool fill_if_empty = false);
  // Schedules refills (one per loop turn) until every wanted key has size() idle processes.
  void schedule_fill();
  // Stops refilling (a server shutting down) and kills the idle processes.
  void shutdown();
  size_t idle() const;

  // Whether `pid` is one of the pool's idle processes (the stray sweep must not reap it).
  static bool owns(pid_t pid);

  static constexpr size_t kMaxKeys = 4;

 private:
  struct Entry {
    pid_t pid;
    int channel;
    sandbox::CloneResult clone;
  };
  struct Slot {
    WarmSpec spec;
    std::deque<Entry> idle;
    uint64_t last_used = 0;
    bool failing = false;  // the last fill failed: not retried until the next take
    size_t filling = 0;    // fills requested, not yet answered
  };
  // Creates one warm process for `slot` and waits for it (one-shot use); false on failure.
  bool fill_now(Slot& slot);
  // Asks the fork server for one more warm process for `key`, without waiting.
  bool fill_async(const std::string& key, Slot& slot);
  void watch(int zygote_socket);  // reads fill replies when the socket turns readable
  void unwatch();
  void kill_entry(const Entry& e);
  void on_timer();

  uv_loop_t* loop_;
  size_t size_ = 0;
  uint64_t clock_ = 0;
  std::map<std::string, Slot> slots_;
  uv_timer_t* timer_ = nullptr;  // owned by the loop once closed
  uv_poll_t* poll_ = nullptr;    // on the fork server's socket, while fills are pending
  int poll_fd_ = -1;
  bool shut_down_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace wj
