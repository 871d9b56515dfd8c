// HttpServer: HTTP/1.1 on libuv streams (unix sockets and loopback TCP), parsed by
// Debian's libhttp-parser. One request at a time per connection (keep-alive, no
// pipelining in parallel), bounded headers and bodies, a header-read timeout, chunked
// streaming responses, and bearer-token auth on TCP listeners.
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace wj {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // decoded path, no query
  std::map<std::string, std::string> query;    // decoded
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  // Who sent it, for per-client state (idempotency keys): "uid:N" on a unix socket (the
  // peer's SO_PEERCRED uid), "token" on TCP (the one bearer token). One place to re-key.
  std::string client;
};

class HttpConnection;

// One request and its response. Handlers may answer later (after a job ends).
class HttpExchange {
 public:
  const HttpRequest& request() const { return req_; }
  // A complete response with Content-Length.
  void respond(int status, const std::string& content_type, const std::string& body,
               const std::vector<std::pair<std::string, std::string>>& extra_headers = {});
  // A chunked response: begin, any number of chunks, end.
  void begin_stream(int status, const std::string& content_type);
  // False when the client is gone or too far behind (the connection is then closed).
  bool write_chunk(const std::string& data);
  void end_stream();
  bool finished() const { return finished_; }
  bool client_gone() const { return conn_ == nullptr; }
  // Called once if the client disconnects before the response is finished.
  void on_abort(std::function<void()> cb) { on_abort_ = std::move(cb); }

 private:
  friend class HttpConnection;
  HttpRequest req_;
  HttpConnection* conn_ = nullptr;
  bool started_ = false, finished_ = false;
  std::function<void()> on_abort_;
};

struct HttpLimits {
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 8u << 20;
  double header_timeout_ms = 10000;  // the whole request (headers and body) must arrive within this
  size_t max_pending_write_bytes = 8u << 20;  // a reader this far behind is dropped
  size_t max_connections = 512;               // more are closed on accept
};

class HttpServer {
 public:
  using Handler = std::function<void(const std::shared_ptr<HttpExchange>&)>;
  HttpServer(uv_loop_t* loop, HttpLimits limits, Handler handler);
  ~HttpServer();

  // Binds a unix socket (replacing a stale one) with the given mode.
  std::optional<std::string> listen_unix(const std::string& path, unsigned mode);
  // Binds a TCP address; requests must carry "Authorization: Bearer <token>".
  std::optional<std::string> listen_tcp(const std::string& host, int port, const std::string& token);
  // Listens on a socket already bound and listening (systemd socket activation). A TCP
  // one needs the bearer token, as listen_tcp.
  std::optional<std::string> listen_fd(int fd, bool tcp, const std::string& token);
  // Closes the listeners (new connections are refused); open connections go on.
  void stop_accepting();
  // Closes every connection; `done` runs once all handles are closed.
  void close_all(std::function<void()> done);
  size_t connections() const { return conns_.size(); }

 private:
  friend class HttpConnection;
  struct ListenerHandle;
  void on_connection(ListenerHandle* l);
  void remove(HttpConnection* c);
  void maybe_closed();

  uv_loop_t* loop_;
  HttpLimits limits_;
  Handler handler_;
  std::vector<ListenerHandle*> listeners_;
  std::vector<HttpConnection*> conns_;
  std::function<void()> closed_cb_;
  size_t closing_handles_ = 0;
};

// JSON error body of the stable shape {"error": {"code": ..., "message": ...}}.
std::string http_error_body(const std::string& code, const std::string& message);
const char* http_reason(int status);

}  // namespace wj
