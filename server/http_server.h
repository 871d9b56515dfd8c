// HttpServer: HTTP/1.1 on libuv streams (unix sockets and loopback TCP), parsed by
// Debian's libhttp-parser. One request at a time per connection (keep-alive, no
// pipelining in parallel), bounded headers and bodies, chunked streaming responses.
//
// Fairness (a client must not starve the others or the host):
// - every request names its client: the unix peer's uid (SO_PEERCRED), or on TCP the named
//   bearer token, checked as soon as the headers are complete, before any body is read;
// - each listener has its own connection cap (a TCP flood cannot take the unix socket's
//   slots); at the cap, the oldest connection that never completed a request's headers
//   makes room for the new one;
// - request bodies and pipelined input buffered at once, all connections together, stay
//   within one budget (503 past it), part of which only the unix socket may use;
// - timeouts: an idle connection is closed, a request must arrive within the header
//   timeout from its first byte, and a client that stops reading its response is dropped;
// - answers waiting for slow readers are bounded per connection and all together.
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace wj {

// Who sent a request. On a unix socket: "uid:N" (the peer's uid, from SO_PEERCRED); on
// TCP: "token:NAME" (the token it presented). Admins see and act on every client's jobs.
struct HttpClient {
  std::string owner;
  bool admin = false;
};

// A bearer token accepted on TCP listeners.
struct ApiToken {
  std::string name;
  std::string token;
  bool admin = false;
};

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // decoded path, no query
  std::map<std::string, std::string> query;    // decoded
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  HttpClient client;
};

struct BufferBudget;

// Bytes charged against the server's buffer budget, given back when this is reset or dies.
class BufferCharge {
 public:
  BufferCharge() = default;
  BufferCharge(std::shared_ptr<BufferBudget> budget, bool tcp) : budget_(std::move(budget)), tcp_(tcp) {}
  BufferCharge(BufferCharge&& o) noexcept { *this = std::move(o); }
  BufferCharge& operator=(BufferCharge&& o) noexcept;
  ~BufferCharge() { reset(); }
  bool grow_to(size_t n);  // false (nothing charged) when the budget cannot cover n bytes
  void reset();
  size_t bytes() const { return bytes_; }

 private:
  std::shared_ptr<BufferBudget> budget_;
  bool tcp_ = false;
  size_t bytes_ = 0;
};

class HttpConnection;

// One request and its response. Handlers may answer later (after a job ends).
class HttpExchange {
 public:
  const HttpRequest& request() const { return req_; }
  const HttpClient& client() const { return req_.client; }
  // Frees the request body (and its share of the buffer budget) once it has been parsed.
  void release_body();
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
  BufferCharge body_charge_;
};

struct HttpLimits {
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 8u << 20;
  double header_timeout_ms = 10000;  // a request (headers and body) must arrive within this of its first byte
  double idle_timeout_ms = 10000;    // a connection with no request for this long is closed; a client that
                                     // reads none of its response for this long is dropped
  size_t max_pending_write_bytes = 8u << 20;  // a reader this far behind is dropped
  // Answers written but not yet taken by their clients, all connections together: past it,
  // a connection that already has some waiting is dropped rather than given more.
  size_t max_pending_write_total = 64u << 20;
  size_t max_connections = 256;               // per listener (see above)
  // Request bodies and pipelined input buffered at once, all connections together. TCP
  // clients together may use all but max_body_bytes of it (half, if it is smaller), so a
  // full request on the unix socket always fits.
  size_t max_buffered_bytes = 64u << 20;
};

class HttpServer {
 public:
  using Handler = std::function<void(const std::shared_ptr<HttpExchange>&)>;
  HttpServer(uv_loop_t* loop, HttpLimits limits, Handler handler);
  ~HttpServer();

  // Binds a unix socket (replacing a stale one) with the given mode.
  std::optional<std::string> listen_unix(const std::string& path, unsigned mode);
  // Binds a TCP address; requests must carry "Authorization: Bearer <token>" with one of
  // `tokens` (at least one).
  std::optional<std::string> listen_tcp(const std::string& host, int port, std::vector<ApiToken> tokens);
  // Listens on a socket already bound and listening (systemd socket activation: takes the
  // fd). A TCP one needs bearer tokens, as listen_tcp.
  std::optional<std::string> listen_fd(int fd, bool tcp, std::vector<ApiToken> tokens);
  // Serves one already connected unix stream socket (takes the fd): as a unix-socket
  // client (its peer's uid), or, with `tokens`, requiring a bearer token like TCP. For
  // tests and the fuzz target.
  std::optional<std::string> adopt(int fd, std::vector<ApiToken> tokens = {});
  // Closes the listeners (new connections are refused); open connections go on.
  void stop_accepting();
  // Closes every connection; `done` runs once all handles are closed.
  void close_all(std::function<void()> done);
  size_t connections() const { return conns_.size(); }
  size_t buffered_bytes() const;  // charged against max_buffered_bytes now
  size_t pending_write_bytes() const { return pending_write_bytes_; }

 private:
  friend class HttpConnection;
  struct ListenerHandle;
  void on_connection(ListenerHandle* l);
  void add_connection(HttpConnection* c, ListenerHandle* l);
  void remove(HttpConnection* c);
  void maybe_closed();

  uv_loop_t* loop_;
  HttpLimits limits_;
  Handler handler_;
  std::vector<ListenerHandle*> listeners_;
  std::vector<HttpConnection*> conns_;  // oldest first
  std::shared_ptr<BufferBudget> budget_;
  std::function<void()> closed_cb_;
  size_t closing_handles_ = 0;
  size_t pending_write_bytes_ = 0;
};

// Reads a token file: one token per line, "NAME TOKEN" or "NAME TOKEN admin" (blank lines
// and lines starting with '#' are skipped). A file holding a single bare token (the
// original format) names it "default", not admin. Tokens are at least 16 characters, names
// and tokens unique. Errors name the file and line. The file must be a regular file owned
// by the server's user or root and not writable by group or others; one that every local
// user can read is accepted with a `warning`.
std::optional<std::string> load_token_file(const std::string& path, std::vector<ApiToken>* out,
                                           std::string* warning = nullptr);

// JSON error body of the stable shape {"error": {"code": ..., "message": ...}}.
std::string http_error_body(const std::string& code, const std::string& message);
const char* http_reason(int status);

}  // namespace wj
