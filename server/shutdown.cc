#include "server/shutdown.h"

#include <csignal>

#include "server/api.h"
#include "server/http_server.h"

namespace wj {

SignalShutdown::SignalShutdown(uv_loop_t* loop, HttpServer* http, ServerLog* log, Begin begin)
    : http_(http), log_(log), begin_(std::move(begin)) {
  for (uv_signal_t& s : sigs_) {
    uv_signal_init(loop, &s);
    s.data = this;
  }
}

void SignalShutdown::listen() {
  auto on_signal = [](uv_signal_t* s, int signum) { static_cast<SignalShutdown*>(s->data)->trigger(signum); };
  uv_signal_start(&sigs_[0], on_signal, SIGTERM);
  uv_signal_start(&sigs_[1], on_signal, SIGINT);
}

void SignalShutdown::trigger(int signum) {
  if (started_) return;
  started_ = true;
  log_->event("shutdown_started", {{"signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"}});
  begin_([this] {
    close_handles();
    log_->event("shutdown_complete", {});
  });
}

void SignalShutdown::close_now() {
  started_ = true;
  close_handles();
}

void SignalShutdown::close_handles() {
  for (uv_signal_t& s : sigs_) uv_close(reinterpret_cast<uv_handle_t*>(&s), nullptr);
  http_->close_all([] {});
}

}  // namespace wj
