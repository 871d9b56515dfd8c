#include "server/http_server.h"

#include <sys/socket.h>

#include "storage/curl_lib.h"
#include <http_parser.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

namespace wj {

const char* http_reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

std::string http_error_body(const std::string& code, const std::string& message) {
  nlohmann::ordered_json j = {{"error", {{"code", code}, {"message", message}}}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

namespace {

std::string decode(const std::string& s) {
  const curl::Lib* c = curl::lib();  // serve loads it at start-up, or does not start
  if (!c) return s;
  int n = 0;
  char* d = c->easy_unescape(nullptr, s.c_str(), static_cast<int>(s.size()), &n);
  if (!d) return s;
  std::string out(d, static_cast<size_t>(n));
  c->free(d);
  return out;
}

std::map<std::string, std::string> parse_query(const std::string& q) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  while (i <= q.size()) {
    size_t amp = q.find('&', i);
    if (amp == std::string::npos) amp = q.size();
    std::string kv = q.substr(i, amp - i);
    if (!kv.empty()) {
      auto eq = kv.find('=');
      out[decode(kv.substr(0, eq))] = eq == std::string::npos ? "" : decode(kv.substr(eq + 1));
    }
    i = amp + 1;
  }
  return out;
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

}  // namespace

struct HttpServer::ListenerHandle {
  HttpServer* server;
  union {
    uv_pipe_t pipe;
    uv_tcp_t tcp;
  } h;
  bool is_tcp = false;
  std::string token;
  std::string unix_path;
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&h); }
};

class HttpConnection {
 public:
  HttpConnection(HttpServer* server, bool tcp, std::string token)
      : server_(server), tcp_(tcp), token_(std::move(token)) {
    http_parser_init(&parser_, HTTP_REQUEST);
    parser_.data = this;
    http_parser_settings_init(&settings_);
    settings_.on_message_begin = [](http_parser* p) { return self(p)->on_begin(); };
    settings_.on_url = [](http_parser* p, const char* at, size_t n) { return self(p)->on_url(at, n); };
    settings_.on_header_field = [](http_parser* p, const char* at, size_t n) { return self(p)->on_field(at, n); };
    settings_.on_header_value = [](http_parser* p, const char* at, size_t n) { return self(p)->on_value(at, n); };
    settings_.on_headers_complete = [](http_parser* p) { return self(p)->on_headers_complete(); };
    settings_.on_body = [](http_parser* p, const char* at, size_t n) { return self(p)->on_body(at, n); };
    settings_.on_message_complete = [](http_parser* p) { return self(p)->on_complete(); };
  }

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&h_); }
  bool init(uv_loop_t* loop) {
    if (tcp_) uv_tcp_init(loop, &h_.tcp);
    else uv_pipe_init(loop, &h_.pipe, 0);
    h_.pipe.data = this;
    uv_timer_init(loop, &timer_);
    timer_.data = this;
    return true;
  }

  void start() {
    client_ = "token";
    if (!tcp_) {
      uv_os_fd_t fd = -1;
      ucred cred{};
      socklen_t len = sizeof cred;
      client_ = uv_fileno(reinterpret_cast<uv_handle_t*>(&h_), &fd) == 0 &&
                        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0
                    ? "uid:" + std::to_string(cred.uid)
                    : "unix";
    }
    arm_header_timer();
    uv_read_start(
        stream(),
        [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
          buf->base = new char[suggested];
          buf->len = suggested;
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          auto* c = static_cast<HttpConnection*>(s->data);
          if (n > 0) c->feed(buf->base, static_cast<size_t>(n));
          else if (n < 0) c->close();
          delete[] buf->base;
        });
  }

  // Writes raw bytes; false when the peer is too far behind (then the connection closes).
  bool write_raw(std::string data) {
    if (closing_) return false;
    if (stream()->write_queue_size > server_->limits_.max_pending_write_bytes) {
      close();
      return false;
    }
    struct Req {
      uv_write_t w;
      std::string data;
    };
    auto* r = new Req{{}, std::move(data)};
    uv_buf_t b = uv_buf_init(r->data.data(), static_cast<unsigned>(r->data.size()));
    r->w.data = r;
    if (uv_write(&r->w, stream(), &b, 1, [](uv_write_t* w, int) { delete static_cast<Req*>(w->data); }) != 0) {
      delete r;
      close();
      return false;
    }
    return true;
  }

  // The current exchange is answered: go on with the next request, or close.
  void response_done() {
    current_.reset();
    if (closing_ || lingering_) return;  // nothing more is parsed or answered here
    if (!keep_alive_) {
      shutdown_then_close();
      return;
    }
    http_parser_pause(&parser_, 0);
    arm_header_timer();
    if (!pending_.empty()) {
      std::string rest = std::move(pending_);
      pending_.clear();
      feed(rest.data(), rest.size());
    }
  }

  void close() {
    if (closing_) return;
    closing_ = true;
    uv_read_stop(stream());
    if (current_) {
      auto ex = current_;
      current_.reset();
      ex->conn_ = nullptr;
      if (!ex->finished_ && ex->on_abort_) {
        auto cb = std::move(ex->on_abort_);
        cb();
      }
    }
    server_->closing_handles_ += 2;
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) { static_cast<HttpConnection*>(h->data)->handle_closed(); });
    uv_close(reinterpret_cast<uv_handle_t*>(&h_), [](uv_handle_t* h) { static_cast<HttpConnection*>(h->data)->handle_closed(); });
  }

  HttpServer* server_;

 private:
  static HttpConnection* self(http_parser* p) { return static_cast<HttpConnection*>(p->data); }

  void handle_closed() {
    if (current_) current_->conn_ = nullptr;  // never leave an exchange pointing here
    server_->closing_handles_--;
    if (++closed_handles_ == 2) {
      server_->remove(this);
      delete this;
    }
  }

  void shutdown_then_close() {
    // Let queued writes flush and half-close; then read and drop what the client still
    // sends until it closes (or 2 s pass): closing with unread input would reset the
    // connection and lose the response we just wrote (a 413 sent mid-upload, say).
    if (lingering_ || closing_) return;
    lingering_ = true;
    auto* req = new uv_shutdown_t;
    req->data = this;
    if (uv_shutdown(req, stream(), [](uv_shutdown_t* r, int status) {
          auto* c = static_cast<HttpConnection*>(r->data);
          delete r;
          if (status != 0) c->close();
        }) != 0) {
      delete req;
      close();
      return;
    }
    uv_timer_start(&timer_, [](uv_timer_t* t) { static_cast<HttpConnection*>(t->data)->close(); }, 2000, 0);
  }

  void arm_header_timer() {
    if (lingering_) return;
    uv_timer_start(
        &timer_,
        [](uv_timer_t* t) {
          auto* c = static_cast<HttpConnection*>(t->data);
          if (c->current_) return;  // a request is being answered: not idle
          if (c->bytes_in_message_ > 0)
            c->reply_error(408, "request_timeout", "the request did not arrive in time");
          else
            c->close();  // an idle keep-alive connection
        },
        static_cast<uint64_t>(server_->limits_.header_timeout_ms), 0);
  }

  void feed(const char* data, size_t n) {
    if (closing_ || lingering_) return;  // a lingering connection's input is dropped
    if (current_ || HTTP_PARSER_ERRNO(&parser_) == HPE_PAUSED) {
      pending_.append(data, n);  // the next request waits until this one is answered
      if (pending_.size() > server_->limits_.max_body_bytes + server_->limits_.max_header_bytes) close();
      return;
    }
    size_t used = http_parser_execute(&parser_, &settings_, data, n);
    enum http_errno err = HTTP_PARSER_ERRNO(&parser_);
    if (err == HPE_PAUSED) {
      if (used < n) pending_.append(data + used, n - used);
      return;
    }
    if (err != HPE_OK) {
      if (error_sent_) return;
      if (err == HPE_CB_header_field || err == HPE_CB_header_value || err == HPE_CB_body || err == HPE_CB_url ||
          err == HPE_CB_headers_complete || err == HPE_CB_message_begin || err == HPE_CB_message_complete)
        return;  // a callback refused (and answered, or the connection is going away)
      reply_error(400, "bad_request", std::string("malformed HTTP request: ") + http_errno_description(err));
    }
  }

  void reply_error(int status, const std::string& code, const std::string& msg) {
    error_sent_ = true;
    keep_alive_ = false;
    std::string body = http_error_body(code, msg);
    write_raw("HTTP/1.1 " + std::to_string(status) + " " + http_reason(status) +
              "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) +
              "\r\n\r\n" + body);
    shutdown_then_close();
  }

  int on_begin() {
    // A connection that is closing or lingering answers nothing more, even for requests
    // already in the buffer (pipelined after `Connection: close`, or after a close).
    if (closing_ || lingering_) return 1;
    req_ = HttpRequest{};
    url_.clear();
    field_.clear();
    value_.clear();
    header_bytes_ = 0;
    bytes_in_message_ = 1;
    return 0;
  }
  int on_url(const char* at, size_t n) {
    url_.append(at, n);
    if (url_.size() > 8192) {
      reply_error(431, "request_too_large", "the request URL is longer than 8192 bytes");
      return 1;
    }
    return 0;
  }
  void commit_header() {
    if (field_.empty()) return;
    std::string name = field_;
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    req_.headers[name] = value_;
    field_.clear();
    value_.clear();
  }
  int on_field(const char* at, size_t n) {
    if (in_value_) {  // a new header begins: the previous one is complete
      commit_header();
      in_value_ = false;
    }
    field_.append(at, n);
    return count_header(n);
  }
  int on_value(const char* at, size_t n) {
    in_value_ = true;
    value_.append(at, n);
    return count_header(n);
  }
  int count_header(size_t n) {
    header_bytes_ += n;
    if (header_bytes_ > server_->limits_.max_header_bytes) {
      reply_error(431, "request_too_large",
                  "request headers are larger than " + std::to_string(server_->limits_.max_header_bytes) + " bytes");
      return 1;
    }
    return 0;
  }
  int on_headers_complete() {
    commit_header();
    in_value_ = false;
    // The timer keeps running: the body must arrive within the same timeout.
    if (parser_.content_length != ULLONG_MAX && parser_.content_length > server_->limits_.max_body_bytes) {
      reply_error(413, "payload_too_large",
                  "the request body is larger than " + std::to_string(server_->limits_.max_body_bytes) + " bytes");
      return 1;
    }
    return 0;
  }
  int on_body(const char* at, size_t n) {
    if (req_.body.size() + n > server_->limits_.max_body_bytes) {
      reply_error(413, "payload_too_large",
                  "the request body is larger than " + std::to_string(server_->limits_.max_body_bytes) + " bytes");
      return 1;
    }
    req_.body.append(at, n);
    return 0;
  }
  int on_complete() {
    if (closing_ || lingering_) return 1;
    uv_timer_stop(&timer_);  // the whole request arrived in time
    bytes_in_message_ = 0;
    keep_alive_ = http_should_keep_alive(&parser_);
    req_.method = http_method_str(static_cast<http_method>(parser_.method));
    http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url_.data(), url_.size(), 0, &u) != 0 || !(u.field_set & (1 << UF_PATH))) {
      reply_error(400, "bad_request", "malformed request URL");
      return 1;
    }
    req_.path = decode(url_.substr(u.field_data[UF_PATH].off, u.field_data[UF_PATH].len));
    if (u.field_set & (1 << UF_QUERY)) req_.query = parse_query(url_.substr(u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len));
    http_parser_pause(&parser_, 1);
    auto ex = std::make_shared<HttpExchange>();
    ex->req_ = std::move(req_);
    ex->req_.client = client_;
    ex->conn_ = this;
    current_ = ex;
    if (tcp_) {
      auto it = ex->req_.headers.find("authorization");
      if (token_.empty() || it == ex->req_.headers.end() || !constant_time_equal(it->second, "Bearer " + token_)) {
        ex->respond(401, "application/json", http_error_body("unauthorized", "a valid bearer token is required"),
                    {{"WWW-Authenticate", "Bearer"}});
        return 0;
      }
    }
    server_->handler_(ex);
    return 0;
  }

  bool tcp_;
  std::string token_;
  std::string client_;  // HttpRequest::client for every request on this connection
  union {
    uv_pipe_t pipe;
    uv_tcp_t tcp;
  } h_;
  uv_timer_t timer_;
  http_parser parser_;
  http_parser_settings settings_;
  HttpRequest req_;
  std::string url_, field_, value_, pending_;
  bool in_value_ = false;
  size_t header_bytes_ = 0;
  size_t bytes_in_message_ = 0;
  bool keep_alive_ = true;
  bool closing_ = false;
  bool lingering_ = false;
  bool error_sent_ = false;
  int closed_handles_ = 0;
  std::shared_ptr<HttpExchange> current_;

  friend class HttpExchange;
};

void HttpExchange::respond(int status, const std::string& content_type, const std::string& body,
                           const std::vector<std::pair<std::string, std::string>>& extra) {
  if (started_ || !conn_) return;
  started_ = finished_ = true;
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + http_reason(status) + "\r\nContent-Type: " +
                     content_type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  for (const auto& [k, v] : extra) head += k + ": " + v + "\r\n";
  HttpConnection* c = conn_;
  if (!c->keep_alive_) head += "Connection: close\r\n";
  c->write_raw(head + "\r\n" + body);
  conn_ = nullptr;
  c->response_done();
}

void HttpExchange::begin_stream(int status, const std::string& content_type) {
  if (started_ || !conn_) return;
  started_ = true;
  conn_->write_raw("HTTP/1.1 " + std::to_string(status) + " " + http_reason(status) + "\r\nContent-Type: " + content_type +
                   "\r\nTransfer-Encoding: chunked\r\nCache-Control: no-store\r\n" +
                   (conn_->keep_alive_ ? "" : "Connection: close\r\n") + "\r\n");
}

bool HttpExchange::write_chunk(const std::string& data) {
  if (!conn_ || finished_ || data.empty()) return conn_ != nullptr;
  char len[32];
  std::snprintf(len, sizeof len, "%zx\r\n", data.size());
  return conn_->write_raw(len + data + "\r\n");
}

void HttpExchange::end_stream() {
  if (!conn_ || finished_) return;
  finished_ = true;
  HttpConnection* c = conn_;
  c->write_raw("0\r\n\r\n");
  conn_ = nullptr;
  c->response_done();
}

HttpServer::HttpServer(uv_loop_t* loop, HttpLimits limits, Handler handler)
    : loop_(loop), limits_(limits), handler_(std::move(handler)) {}

HttpServer::~HttpServer() = default;

std::optional<std::string> HttpServer::listen_unix(const std::string& path, unsigned mode) {
  auto* l = new ListenerHandle{};
  l->server = this;
  l->unix_path = path;
  uv_pipe_init(loop_, &l->h.pipe, 0);
  l->h.pipe.data = l;
  // A socket file left by a previous run is replaced; anything else is not touched.
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      uv_close(reinterpret_cast<uv_handle_t*>(&l->h), [](uv_handle_t* h) { delete static_cast<ListenerHandle*>(h->data); });
      return path + " exists and is not a socket";
    }
    unlink(path.c_str());
  }
  // Bound under a temporary name and renamed once listening: a client that sees the path
  // can connect (no window between bind and listen where it would be refused).
  const std::string tmp = path + ".binding";
  unlink(tmp.c_str());
  int rc = uv_pipe_bind(&l->h.pipe, tmp.c_str());
  if (rc == 0) rc = uv_listen(l->stream(), 128, [](uv_stream_t* s, int status) {
    if (status == 0) {
      auto* lh = static_cast<ListenerHandle*>(s->data);
      lh->server->on_connection(lh);
    }
  });
  if (rc == 0 && chmod(tmp.c_str(), mode) != 0) rc = -errno;
  if (rc == 0 && rename(tmp.c_str(), path.c_str()) != 0) rc = -errno;
  if (rc != 0) {
    unlink(tmp.c_str());
    uv_close(reinterpret_cast<uv_handle_t*>(&l->h), [](uv_handle_t* h) { delete static_cast<ListenerHandle*>(h->data); });
    return "cannot listen on unix:" + path + ": " + uv_strerror(rc);
  }
  listeners_.push_back(l);
  return std::nullopt;
}

std::optional<std::string> HttpServer::listen_tcp(const std::string& host, int port, const std::string& token) {
  if (token.empty()) return "a TCP listener needs a bearer token";
  auto* l = new ListenerHandle{};
  l->server = this;
  l->is_tcp = true;
  l->token = token;
  uv_tcp_init(loop_, &l->h.tcp);
  l->h.tcp.data = l;
  sockaddr_storage addr{};
  int rc = uv_ip4_addr(host == "localhost" ? "127.0.0.1" : host.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr));
  if (rc != 0) rc = uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr));
  if (rc == 0) rc = uv_tcp_bind(&l->h.tcp, reinterpret_cast<sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(l->stream(), 128, [](uv_stream_t* s, int status) {
    if (status == 0) {
      auto* lh = static_cast<ListenerHandle*>(s->data);
      lh->server->on_connection(lh);
    }
  });
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&l->h), [](uv_handle_t* h) { delete static_cast<ListenerHandle*>(h->data); });
    return "cannot listen on tcp:" + host + ":" + std::to_string(port) + ": " + uv_strerror(rc);
  }
  listeners_.push_back(l);
  return std::nullopt;
}

std::optional<std::string> HttpServer::listen_fd(int fd, bool tcp, const std::string& token) {
  if (tcp && token.empty()) return "a TCP listener needs a bearer token";
  auto* l = new ListenerHandle{};
  l->server = this;
  l->is_tcp = tcp;
  l->token = token;
  int rc = tcp ? uv_tcp_init(loop_, &l->h.tcp) : uv_pipe_init(loop_, &l->h.pipe, 0);
  l->h.pipe.data = l;
  if (rc == 0) rc = tcp ? uv_tcp_open(&l->h.tcp, fd) : uv_pipe_open(&l->h.pipe, fd);
  if (rc == 0) rc = uv_listen(l->stream(), 128, [](uv_stream_t* s, int status) {
    if (status == 0) {
      auto* lh = static_cast<ListenerHandle*>(s->data);
      lh->server->on_connection(lh);
    }
  });
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&l->h), [](uv_handle_t* h) { delete static_cast<ListenerHandle*>(h->data); });
    return "cannot listen on inherited fd " + std::to_string(fd) + ": " + uv_strerror(rc);
  }
  listeners_.push_back(l);
  return std::nullopt;
}

void HttpServer::on_connection(ListenerHandle* l) {
  auto* c = new HttpConnection(this, l->is_tcp, l->token);
  c->init(loop_);
  if (uv_accept(l->stream(), c->stream()) != 0 || conns_.size() >= limits_.max_connections) {
    c->close();  // over the cap: accepted and closed at once, so the backlog drains
    return;
  }
  conns_.push_back(c);
  c->start();
}

void HttpServer::remove(HttpConnection* c) {
  conns_.erase(std::remove(conns_.begin(), conns_.end(), c), conns_.end());
  maybe_closed();
}

void HttpServer::stop_accepting() {
  for (ListenerHandle* l : listeners_) {
    if (!l->unix_path.empty()) unlink(l->unix_path.c_str());
    ++closing_handles_;
    uv_close(reinterpret_cast<uv_handle_t*>(&l->h), [](uv_handle_t* h) {
      auto* lh = static_cast<ListenerHandle*>(h->data);
      lh->server->closing_handles_--;
      lh->server->maybe_closed();
      delete lh;
    });
  }
  listeners_.clear();
}

void HttpServer::close_all(std::function<void()> done) {
  closed_cb_ = std::move(done);
  stop_accepting();
  auto conns = conns_;
  for (HttpConnection* c : conns) c->close();
  maybe_closed();
}

void HttpServer::maybe_closed() {
  if (closed_cb_ && conns_.empty() && listeners_.empty() && closing_handles_ == 0) {
    auto cb = std::move(closed_cb_);
    closed_cb_ = nullptr;
    cb();
  }
}

}  // namespace wj
