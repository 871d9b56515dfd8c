#include "server/http_server.h"

#include "storage/curl_lib.h"
#include <http_parser.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

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
    case 403: return "Forbidden";
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

struct BufferBudget {
  size_t cap = 0, tcp_cap = 0;
  size_t used = 0, tcp_used = 0;
};

BufferCharge& BufferCharge::operator=(BufferCharge&& o) noexcept {
  if (this != &o) {
    reset();
    budget_ = std::move(o.budget_);
    tcp_ = o.tcp_;
    bytes_ = o.bytes_;
    o.bytes_ = 0;
  }
  return *this;
}

bool BufferCharge::grow_to(size_t n) {
  if (!budget_ || n <= bytes_) return budget_ != nullptr;
  size_t more = n - bytes_;
  if (budget_->used + more > budget_->cap) return false;
  if (tcp_ && budget_->tcp_used + more > budget_->tcp_cap) return false;
  budget_->used += more;
  if (tcp_) budget_->tcp_used += more;
  bytes_ = n;
  return true;
}

void BufferCharge::reset() {
  if (budget_ && bytes_) {
    budget_->used -= bytes_;
    if (tcp_) budget_->tcp_used -= bytes_;
  }
  bytes_ = 0;
}

std::optional<std::string> load_token_file(const std::string& path, std::vector<ApiToken>* out, std::string* warning) {
  out->clear();
  // Whoever can write the file can add an admin token: only the server's user (or root)
  // may. Opened once, checked and read through the same descriptor.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return "token_file " + path + ": cannot be read: " + std::strerror(errno);
  struct stat st {};
  std::string text;
  std::optional<std::string> bad;
  if (fstat(fd, &st) != 0) bad = std::string("cannot be read: ") + std::strerror(errno);
  else if (!S_ISREG(st.st_mode)) bad = "is not a regular file";
  else if (st.st_uid != geteuid() && st.st_uid != 0) bad = "belongs to uid " + std::to_string(st.st_uid) + ", not to the server's user or root";
  else if (st.st_mode & (S_IWGRP | S_IWOTH)) bad = "is writable by group or others (anyone who can write it could add an admin token)";
  else if (st.st_size > (1 << 20)) bad = "is larger than 1 MiB";
  char buf[4096];
  for (ssize_t n; !bad && (n = read(fd, buf, sizeof buf)) != 0;) {
    if (n < 0) bad = std::string("cannot be read: ") + std::strerror(errno);
    else text.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (bad) return "token_file " + path + " " + *bad;
  if (warning && (st.st_mode & S_IROTH))
    *warning = "token_file " + path + " is readable by every local user: they can use its tokens";
  std::istringstream f(text);
  std::string line;
  int lineno = 0;
  std::vector<int> bare_lines;
  while (std::getline(f, line)) {
    ++lineno;
    std::istringstream in(line);
    std::vector<std::string> words;
    for (std::string w; in >> w;) words.push_back(w);
    if (words.empty() || words[0][0] == '#') continue;
    std::string where = "token_file " + path + ":" + std::to_string(lineno) + ": ";
    ApiToken t;
    if (words.size() == 1) {
      t.name = "default";
      t.token = words[0];
      bare_lines.push_back(lineno);
    } else if (words.size() == 2 || (words.size() == 3 && words[2] == "admin")) {
      t.name = words[0];
      t.token = words[1];
      t.admin = words.size() == 3;
    } else {
      return where + "expected \"NAME TOKEN\" or \"NAME TOKEN admin\"";
    }
    for (char c : t.name)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
        return where + "a token name may hold only letters, digits, '-', '_' and '.'";
    if (t.token.size() < 16) return where + "the token must be at least 16 characters";
    for (const ApiToken& o : *out) {
      if (o.name == t.name) return where + "the name \"" + t.name + "\" is used twice";
      if (o.token == t.token) return where + "the same token is listed twice";
    }
    out->push_back(std::move(t));
  }
  if (!bare_lines.empty() && out->size() > 1)
    return "token_file " + path + ":" + std::to_string(bare_lines[0]) +
           ": a bare token (no name) is allowed only as the file's single entry";
  if (out->empty()) return "token_file " + path + " holds no token";
  return std::nullopt;
}

struct HttpServer::ListenerHandle {
  HttpServer* server;
  union {
    uv_pipe_t pipe;
    uv_tcp_t tcp;
  } h;
  bool is_tcp = false;
  std::shared_ptr<const std::vector<ApiToken>> tokens;  // TCP: required
  std::string unix_path;
  size_t connections = 0;
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&h); }
};

class HttpConnection {
 public:
  // `tcp`: the handle is a TCP socket (else a unix one). `tokens`: non-null when every
  // request must carry one of them (TCP listeners).
  HttpConnection(HttpServer* server, HttpServer::ListenerHandle* listener, bool tcp,
                 std::shared_ptr<const std::vector<ApiToken>> tokens)
      : server_(server), listener_(listener), tcp_(tcp), tokens_(std::move(tokens)),
        body_charge_(server->budget_, tokens_ != nullptr), pending_charge_(server->budget_, tokens_ != nullptr) {
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
  void init(uv_loop_t* loop) {
    if (tcp_) uv_tcp_init(loop, &h_.tcp);
    else uv_pipe_init(loop, &h_.pipe, 0);
    h_.pipe.data = this;
    uv_timer_init(loop, &timer_);
    timer_.data = this;
  }

  // A unix-socket client is its peer's uid; false when the kernel cannot say (then the
  // connection is refused: no request goes unattributed).
  bool identify_peer() {
    if (tokens_) return true;
    uv_os_fd_t fd;
    if (uv_fileno(reinterpret_cast<uv_handle_t*>(&h_), &fd) != 0) return false;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) return false;
    peer_.owner = "uid:" + std::to_string(cred.uid);
    // Root, and the server's own user (which the server trusts anyway), are admins.
    peer_.admin = cred.uid == 0 || cred.uid == geteuid();
    return true;
  }

  void start() {
    arm_idle_timer();
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
    if (stream()->write_queue_size > server_->limits_.max_pending_write_bytes || !may_queue(data.size())) {
      close();
      return false;
    }
    struct Req {
      uv_write_t w;
      std::string data;
      HttpConnection* conn;
    };
    auto* r = new Req{{}, std::move(data), this};
    uv_buf_t b = uv_buf_init(r->data.data(), static_cast<unsigned>(r->data.size()));
    r->w.data = r;
    server_->pending_write_bytes_ += r->data.size();
    if (uv_write(&r->w, stream(), &b, 1, [](uv_write_t* w, int status) {
          auto* req = static_cast<Req*>(w->data);
          // The handle (and so the connection and its server) outlives its writes.
          req->conn->server_->pending_write_bytes_ -= req->data.size();
          if (status == 0) req->conn->writes_done_++;
          delete req;
        }) != 0) {
      server_->pending_write_bytes_ -= r->data.size();
      delete r;
      close();
      return false;
    }
    return true;
  }

  // Whether `n` more bytes may wait for this client, all connections' unread answers
  // together staying within max_pending_write_total. A connection already behind gets no
  // more past it. A fresh answer past it is refused too, unless it is small (an error, a
  // status: those always go) or nothing else waits (an answer larger than the whole budget
  // can still be sent): otherwise every client that asks for a large answer and reads none
  // of it would have it queued in full.
  bool may_queue(size_t n) {
    const size_t pending = server_->pending_write_bytes_;
    if (pending + n <= server_->limits_.max_pending_write_total) return true;
    if (stream()->write_queue_size > 0) return false;
    return n <= kSmallAnswer || pending == 0;
  }
  static constexpr size_t kSmallAnswer = 64u << 10;

  // The current exchange is answered: go on with the next request, or close.
  void response_done() {
    current_.reset();
    if (closing_ || lingering_) return;  // nothing more is parsed or answered here
    if (!keep_alive_) {
      shutdown_then_close();
      return;
    }
    http_parser_pause(&parser_, 0);
    arm_idle_timer();
    if (!pending_.empty()) {
      std::string rest = std::move(pending_);
      pending_.clear();
      pending_charge_.reset();
      feed(rest.data(), rest.size());
    }
  }

  void close() {
    if (closing_) return;
    closing_ = true;
    if (counted_ && listener_) listener_->connections--;  // its slot is free at once
    counted_ = false;
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
    req_ = HttpRequest{};
    pending_ = std::string();
    body_charge_.reset();
    pending_charge_.reset();
    server_->closing_handles_ += 2;
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) { static_cast<HttpConnection*>(h->data)->handle_closed(); });
    uv_close(reinterpret_cast<uv_handle_t*>(&h_), [](uv_handle_t* h) { static_cast<HttpConnection*>(h->data)->handle_closed(); });
  }

  // May be closed to make room for a new connection: it never completed an accepted
  // request's headers (or is only lingering after its last answer), and is not answering one.
  bool evictable() const { return !closing_ && !current_ && (!seen_request_ || lingering_); }
  bool closing() const { return closing_; }

  HttpServer* server_;
  HttpServer::ListenerHandle* listener_;  // nullptr for an adopted fd, or once the listener closed

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
    req_ = HttpRequest{};
    pending_ = std::string();
    body_charge_.reset();
    pending_charge_.reset();
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

  // Between requests: closed when nothing comes within the idle timeout. While a request is
  // answered: the same period is the longest a client may leave written bytes unread.
  void arm_idle_timer() {
    if (lingering_ || closing_) return;
    writes_at_arm_ = writes_done_;
    queued_at_arm_ = stream()->write_queue_size;
    uv_timer_start(
        &timer_,
        [](uv_timer_t* t) {
          auto* c = static_cast<HttpConnection*>(t->data);
          if (c->current_) {
            size_t queued = c->stream()->write_queue_size;
            if (queued > 0 && c->writes_done_ == c->writes_at_arm_ && queued >= c->queued_at_arm_)
              c->close();  // the client read nothing of its answer for a whole period
            else c->arm_idle_timer();  // a long wait or a quiet log stream: not idle
            return;
          }
          if (c->bytes_in_message_ > 0) c->reply_error(408, "request_timeout", "the request did not arrive in time");
          else c->close();  // an idle keep-alive connection
        },
        static_cast<uint64_t>(server_->limits_.idle_timeout_ms), 0);
  }

  // From a request's first byte: headers and body must arrive within the header timeout.
  void arm_request_timer() {
    if (lingering_ || closing_) return;
    uv_timer_start(
        &timer_,
        [](uv_timer_t* t) {
          auto* c = static_cast<HttpConnection*>(t->data);
          if (c->current_) return c->arm_idle_timer();
          c->reply_error(408, "request_timeout", "the request did not arrive in time");
        },
        static_cast<uint64_t>(server_->limits_.header_timeout_ms), 0);
  }

  void feed(const char* data, size_t n) {
    if (closing_ || lingering_) return;  // a lingering connection's input is dropped
    if (current_ || HTTP_PARSER_ERRNO(&parser_) == HPE_PAUSED) {
      queue_pending(data, n);  // the next request waits until this one is answered
      return;
    }
    size_t used = http_parser_execute(&parser_, &settings_, data, n);
    enum http_errno err = HTTP_PARSER_ERRNO(&parser_);
    if (err == HPE_PAUSED) {
      if (used < n) queue_pending(data + used, n - used);
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

  // Pipelined input, kept (within the per-connection cap and the server's budget) until
  // the current request is answered.
  void queue_pending(const char* data, size_t n) {
    size_t want = pending_.size() + n;
    if (want > server_->limits_.max_body_bytes + server_->limits_.max_header_bytes || !pending_charge_.grow_to(want)) {
      close();
      return;
    }
    pending_.append(data, n);
  }

  void reply_error(int status, const std::string& code, const std::string& msg,
                   const std::vector<std::pair<std::string, std::string>>& extra = {}) {
    error_sent_ = true;
    keep_alive_ = false;
    std::string body = http_error_body(code, msg);
    std::string head = "HTTP/1.1 " + std::to_string(status) + " " + http_reason(status) +
                       "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\n";
    for (const auto& [k, v] : extra) head += k + ": " + v + "\r\n";
    write_raw(head + "\r\n" + body);
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
    arm_request_timer();
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

  // The bearer token's client, or nullopt. Every token is compared in full, so the time
  // taken does not say which one nearly matched.
  std::optional<HttpClient> authenticate() const {
    auto it = req_.headers.find("authorization");
    if (it == req_.headers.end()) return std::nullopt;
    std::optional<HttpClient> who;
    for (const ApiToken& t : *tokens_)
      if (constant_time_equal(it->second, "Bearer " + t.token)) who = HttpClient{"token:" + t.name, t.admin};
    return who;
  }

  int on_headers_complete() {
    commit_header();
    in_value_ = false;
    // Who is asking is settled before a byte of the body is read or buffered.
    if (tokens_) {
      auto who = authenticate();
      if (!who) {
        reply_error(401, "unauthorized", "a valid bearer token is required", {{"WWW-Authenticate", "Bearer"}});
        return -1;
      }
      req_.client = *who;
    } else {
      req_.client = peer_;
    }
    seen_request_ = true;
    // The request timer keeps running: the body must arrive within the same timeout.
    const size_t max_body = max_body_bytes();
    if (parser_.content_length != ULLONG_MAX && parser_.content_length > max_body) {
      reply_error(413, "payload_too_large", "the request body is larger than " + std::to_string(max_body) + " bytes");
      return -1;
    }
    if (parser_.content_length != ULLONG_MAX && parser_.content_length > 0) {
      // The whole declared body is charged now: a client cannot hold memory it did not pay for.
      size_t len = static_cast<size_t>(parser_.content_length);
      if (!body_charge_.grow_to(len)) return busy();
      req_.body.reserve(len);
    }
    return 0;
  }
  int busy() {
    reply_error(503, "server_busy", "the server is buffering as many request bodies as it may; retry later",
                {{"Retry-After", "1"}});
    return -1;
  }
  // The largest body this client may send: max_body_bytes, or for TCP clients their share
  // of the buffer budget when that is smaller (a larger body could never be buffered: it is
  // refused as too large, not answered "busy, retry later" forever).
  size_t max_body_bytes() const {
    const size_t m = server_->limits_.max_body_bytes;
    return tokens_ ? std::min(m, server_->budget_->tcp_cap) : m;
  }
  int on_body(const char* at, size_t n) {
    if (req_.body.size() + n > max_body_bytes()) {
      reply_error(413, "payload_too_large",
                  "the request body is larger than " + std::to_string(max_body_bytes()) + " bytes");
      return 1;
    }
    if (!body_charge_.grow_to(req_.body.size() + n)) return busy();  // chunked: charged as it comes
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
    req_ = HttpRequest{};
    ex->body_charge_ = std::move(body_charge_);
    body_charge_ = BufferCharge(server_->budget_, tokens_ != nullptr);
    ex->conn_ = this;
    current_ = ex;
    arm_idle_timer();  // watches for a client that stops reading the answer
    server_->handler_(ex);
    return 0;
  }

  bool tcp_;
  std::shared_ptr<const std::vector<ApiToken>> tokens_;
  HttpClient peer_;
  union {
    uv_pipe_t pipe;
    uv_tcp_t tcp;
  } h_;
  uv_timer_t timer_;
  http_parser parser_;
  http_parser_settings settings_;
  HttpRequest req_;
  std::string url_, field_, value_, pending_;
  BufferCharge body_charge_, pending_charge_;
  bool in_value_ = false;
  size_t header_bytes_ = 0;
  size_t bytes_in_message_ = 0;
  uint64_t writes_done_ = 0, writes_at_arm_ = 0;
  size_t queued_at_arm_ = 0;
  bool keep_alive_ = true;
  bool closing_ = false;
  bool lingering_ = false;
  bool error_sent_ = false;
  bool seen_request_ = false;
  int closed_handles_ = 0;

 public:
  bool counted_ = false;  // holds one of its listener's slots

 private:
  std::shared_ptr<HttpExchange> current_;

  friend class HttpExchange;
};

void HttpExchange::release_body() {
  req_.body = std::string();
  body_charge_.reset();
}

void HttpExchange::respond(int status, const std::string& content_type, const std::string& body,
                           const std::vector<std::pair<std::string, std::string>>& extra) {
  if (started_ || !conn_) return;
  // An answer that may not wait for this client now (see may_queue) is a 503 instead.
  if (!conn_->may_queue(body.size() + 1024))
    return respond(503, "application/json",
                   http_error_body("server_busy", "the server holds as many unread answers as it may; retry later"),
                   {{"Retry-After", "1"}});
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
    : loop_(loop), limits_(limits), handler_(std::move(handler)), budget_(std::make_shared<BufferBudget>()) {
  budget_->cap = limits_.max_buffered_bytes;
  budget_->tcp_cap = limits_.max_buffered_bytes > 2 * limits_.max_body_bytes ? limits_.max_buffered_bytes - limits_.max_body_bytes
                                                                            : limits_.max_buffered_bytes / 2;
}

size_t HttpServer::buffered_bytes() const { return budget_->used; }

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

std::optional<std::string> HttpServer::listen_tcp(const std::string& host, int port, std::vector<ApiToken> tokens) {
  if (tokens.empty()) return "a TCP listener needs a bearer token";
  for (const ApiToken& t : tokens)
    if (t.token.empty()) return "a TCP listener's bearer tokens must not be empty";
  auto* l = new ListenerHandle{};
  l->server = this;
  l->is_tcp = true;
  l->tokens = std::make_shared<const std::vector<ApiToken>>(std::move(tokens));
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

std::optional<std::string> HttpServer::listen_fd(int fd, bool tcp, std::vector<ApiToken> tokens) {
  if (tcp && tokens.empty()) return "a TCP listener needs a bearer token";
  for (const ApiToken& t : tokens)
    if (t.token.empty()) return "a TCP listener's bearer tokens must not be empty";
  auto* l = new ListenerHandle{};
  l->server = this;
  l->is_tcp = tcp;
  if (tcp) l->tokens = std::make_shared<const std::vector<ApiToken>>(std::move(tokens));
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
  auto* c = new HttpConnection(this, l, l->is_tcp, l->tokens);
  c->init(loop_);
  if (uv_accept(l->stream(), c->stream()) != 0) {
    c->close();
    return;
  }
  if (l->connections >= limits_.max_connections) {
    // At this listener's cap: the oldest connection that has not completed a request's
    // headers makes room (a flood of idle connections cannot keep real clients out);
    // when every one is busy with a request, the new one is closed at once, so the
    // backlog drains. Other listeners' connections are never touched.
    HttpConnection* victim = nullptr;
    for (HttpConnection* o : conns_)
      if (o->listener_ == l && o->evictable()) {
        victim = o;
        break;
      }
    if (!victim) {
      c->close();
      return;
    }
    victim->close();
  }
  if (!c->identify_peer()) {
    c->close();
    return;
  }
  add_connection(c, l);
}

void HttpServer::add_connection(HttpConnection* c, ListenerHandle* l) {
  if (l) {
    l->connections++;
    c->counted_ = true;
  }
  conns_.push_back(c);
  c->start();
}

std::optional<std::string> HttpServer::adopt(int fd, std::vector<ApiToken> tokens) {
  auto t = tokens.empty() ? nullptr : std::make_shared<const std::vector<ApiToken>>(std::move(tokens));
  auto* c = new HttpConnection(this, nullptr, false, std::move(t));
  c->init(loop_);
  if (int rc = uv_pipe_open(reinterpret_cast<uv_pipe_t*>(c->stream()), fd); rc != 0) {
    c->close();
    return std::string("cannot serve fd ") + std::to_string(fd) + ": " + uv_strerror(rc);
  }
  if (!c->identify_peer()) {
    c->close();
    return "cannot tell the peer of fd " + std::to_string(fd) + " (SO_PEERCRED)";
  }
  add_connection(c, nullptr);
  return std::nullopt;
}

void HttpServer::remove(HttpConnection* c) {
  auto it = std::find(conns_.begin(), conns_.end(), c);
  if (it != conns_.end()) conns_.erase(it);
  maybe_closed();
}

void HttpServer::stop_accepting() {
  for (HttpConnection* c : conns_) c->listener_ = nullptr;  // the listeners go away; their connections stay
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
