// libFuzzer target for the HTTP request path of `serve`: client bytes, split anywhere, go
// through the real connection (server/http_server.cc: libhttp-parser, header and body
// limits, bearer-token check, the buffer budget, pipelining, keep-alive and error
// answers) over a socketpair, and each request that gets through is routed
// (server/route.cc) and answered the way the API would (plain or streamed). Afterwards no
// connection, and no byte of the buffer budget, may be left over.
//
// Input: byte 0 picks the client kind (bit 0: a TCP-style client that must present the
// token "Bearer 0123456789abcdef") and the chunk size the rest is written in (bits 1-2).
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/http_server.h"
#include "server/route.h"

namespace {

uv_loop_t* loop() {
  static uv_loop_t* l = [] {
    auto* p = new uv_loop_t;
    uv_loop_init(p);
    return p;
  }();
  return l;
}

void answer(const std::shared_ptr<wj::HttpExchange>& ex) {
  const wj::HttpRequest& rq = ex->request();
  if (rq.client.owner.empty()) std::abort();  // every request is attributed
  wj::Route r = wj::route_request(rq.method, rq.path);
  if (r.endpoint != wj::Route::kError && r.status != 0) std::abort();
  if (r.endpoint == wj::Route::kError && (r.status < 400 || r.status > 499 || r.code.empty())) std::abort();
  switch (r.endpoint) {
    case wj::Route::kError:
      return ex->respond(r.status, "application/json", wj::http_error_body(r.code, r.message));
    case wj::Route::kSubmit:
    case wj::Route::kRun: {
      size_t n = rq.body.size();
      ex->release_body();
      if (!ex->request().body.empty()) std::abort();
      return ex->respond(202, "application/json", "{\"bytes\":" + std::to_string(n) + "}\n");
    }
    case wj::Route::kJobLogs:
      ex->begin_stream(200, "application/x-ndjson");
      ex->write_chunk("{\"stream\":\"stdout\",\"data\":\"" + r.job_id + "\"}\n");
      return ex->end_stream();
    default: return ex->respond(200, "application/json", "{\"id\":\"" + r.job_id + "\"}\n");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool tcp = data[0] & 1;
  static const size_t steps[] = {1, 7, 100, 1 << 20};
  const size_t step = steps[(data[0] >> 1) & 3];
  ++data, --size;

  wj::HttpLimits lim;
  lim.max_header_bytes = 2048;
  lim.max_body_bytes = 4096;
  lim.max_buffered_bytes = 3 * 4096;
  lim.header_timeout_ms = 20;
  lim.idle_timeout_ms = 20;
  size_t leftover_budget = 0;
  {
    wj::HttpServer server(loop(), lim, answer);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) std::abort();
    std::vector<wj::ApiToken> tokens;
    if (tcp) tokens.push_back({"fuzz", "0123456789abcdef", false});
    if (server.adopt(sv[0], tokens)) std::abort();
    char sink[65536];
    size_t at = 0;
    // Write in chunks, letting the server run between them; read (and drop) its answers.
    for (int spins = 0; at < size && spins < 100000; ++spins) {
      ssize_t w = send(sv[1], data + at, std::min(step, size - at), MSG_NOSIGNAL);
      if (w > 0)
        at += static_cast<size_t>(w);
      else if (w < 0 && errno != EAGAIN)
        break;  // the server closed
      uv_run(loop(), UV_RUN_NOWAIT);
      while (recv(sv[1], sink, sizeof sink, 0) > 0) {
      }
    }
    shutdown(sv[1], SHUT_WR);
    // The server sees EOF and closes; its timers (20 ms, lingering 2 s) bound the rest.
    for (int spins = 0; server.connections() > 0 && spins < 1000; ++spins) {
      uv_run(loop(), UV_RUN_ONCE);
      while (recv(sv[1], sink, sizeof sink, 0) > 0) {
      }
    }
    if (server.connections() > 0) std::abort();  // a connection that never ends
    close(sv[1]);
    bool closed = false;
    server.close_all([&] { closed = true; });
    while (!closed) uv_run(loop(), UV_RUN_ONCE);
    leftover_budget = server.buffered_bytes();
  }
  if (leftover_budget != 0) std::abort();  // every buffered byte was given back
  return 0;
}
