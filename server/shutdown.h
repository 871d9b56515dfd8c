// SignalShutdown: how serve, its gateway mode and the worker stop on SIGTERM or SIGINT.
// The first signal logs `shutdown_started` and starts the frontend's drain; when the drain
// says it is done, the signal handles and the HTTP server are closed and
// `shutdown_complete` is logged, so that the loop can end. Later signals are ignored.
#pragma once

#include <uv.h>

#include <functional>

namespace wj {

class HttpServer;
class ServerLog;

class SignalShutdown {
 public:
  // begin(done): stop taking work and drain; call done() once that has ended.
  using Begin = std::function<void(std::function<void()> done)>;
  SignalShutdown(uv_loop_t* loop, HttpServer* http, ServerLog* log, Begin begin);
  SignalShutdown(const SignalShutdown&) = delete;
  SignalShutdown& operator=(const SignalShutdown&) = delete;

  void listen();             // from now on SIGTERM and SIGINT start the shutdown
  void trigger(int signum);  // start it now, as that signal would (once)
  void close_now();          // nothing to drain: close the handles and the HTTP server

 private:
  void close_handles();

  HttpServer* http_;
  ServerLog* log_;
  Begin begin_;
  uv_signal_t sigs_[2];
  bool started_ = false;
};

}  // namespace wj
