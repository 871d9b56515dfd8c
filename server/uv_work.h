// blocking(): runs a blocking call (a NATS request, a file) off the libuv loop thread, then its
// continuation back on it. Shared by the queue worker and the gateway.
#pragma once

#include <uv.h>

#include <functional>
#include <utility>

namespace wj {

// Runs `work` on libuv's thread pool, then `after` on the loop thread.
inline void blocking(uv_loop_t* loop, std::function<void()> work, std::function<void()> after) {
  struct Req {
    uv_work_t w;
    std::function<void()> work, after;
  };
  auto* r = new Req{{}, std::move(work), std::move(after)};
  r->w.data = r;
  uv_queue_work(
      loop, &r->w, [](uv_work_t* w) { static_cast<Req*>(w->data)->work(); },
      [](uv_work_t* w, int) {
        auto* rq = static_cast<Req*>(w->data);
        rq->after();
        delete rq;
      });
}

}  // namespace wj
