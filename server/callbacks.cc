#include "server/callbacks.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>

#include "server/api.h"
#include "storage/curl_lib.h"

namespace wj {
namespace {

std::string base64(const unsigned char* data, size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
  out.resize(static_cast<size_t>(len));
  return out;
}

std::optional<std::string> unbase64(const std::string& in) {
  if (in.empty() || in.size() % 4 != 0) return std::nullopt;
  std::string out(in.size() / 4 * 3, '\0');
  int len = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (len < 0) return std::nullopt;
  // EVP_DecodeBlock counts the padding as zero bytes.
  size_t pad = (in.size() >= 1 && in.back() == '=') + (in.size() >= 2 && in[in.size() - 2] == '=');
  out.resize(static_cast<size_t>(len) - pad);
  return out;
}

// scheme, lower-case host, port of an http(s) URL; nullopt when it is not one.
struct UrlParts {
  std::string scheme, host;
  int port = 0;
  bool has_userinfo = false;
};

std::optional<UrlParts> split_url(const std::string& url, std::string* why) {
  const curl::Lib* c = curl::lib(why);
  if (!c) return std::nullopt;
  CURLU* u = c->url();
  UrlParts p;
  bool ok = c->url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK;
  auto get = [&](CURLUPart part, std::string* out, unsigned flags = 0) {
    char* v = nullptr;
    if (c->url_get(u, part, &v, flags) != CURLUE_OK) return false;
    *out = v;
    c->free(v);
    return true;
  };
  std::string port, user;
  ok = ok && get(CURLUPART_SCHEME, &p.scheme) && get(CURLUPART_HOST, &p.host) &&
       get(CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
  p.has_userinfo = get(CURLUPART_USER, &user);
  c->url_cleanup(u);
  if (!ok) {
    *why = "callback_url \"" + url + "\" is not a URL";
    return std::nullopt;
  }
  for (char& ch : p.host) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (p.host.size() > 2 && p.host.front() == '[') p.host = p.host.substr(1, p.host.size() - 2);
  p.port = std::atoi(port.c_str());
  return p;
}

size_t discard(char*, size_t s, size_t n, void*) {
  return s * n;
}

}  // namespace

struct CallbackSender::Delivery {
  uv_work_t work;
  uv_timer_t timer;
  CallbackSender* sender;
  std::weak_ptr<bool> alive;
  std::string job_id, url, body, msg_id;
  int attempt = 0;
  double backoff_ms = 0;
  // Filled on the pool thread.
  long http_status = 0;
  std::string error;
  // Copied for the pool thread (it must not read the sender).
  std::string key;
  double timeout_ms = 0;
};

std::unique_ptr<CallbackSender> CallbackSender::create(uv_loop_t* loop, Executor& executor,
                                                       const CallbackConfig& cfg, ServerLog& log,
                                                       std::string* error) {
  if (cfg.secret_file.empty()) return nullptr;
  std::ifstream f(cfg.secret_file);
  if (!f) {
    *error = "callbacks.secret_file " + cfg.secret_file + " cannot be read";
    return nullptr;
  }
  std::string secret;
  std::getline(f, secret);
  while (!secret.empty() && (secret.back() == '\r' || secret.back() == ' ')) secret.pop_back();
  if (secret.rfind("whsec_", 0) != 0) {
    *error = "callbacks.secret_file " + cfg.secret_file +
             " must hold a Standard Webhooks secret: whsec_<base64 key>";
    return nullptr;
  }
  auto key = unbase64(secret.substr(6));
  if (!key || key->size() < 24 || key->size() > 64) {
    *error = "callbacks.secret_file " + cfg.secret_file +
             ": the part after whsec_ must be base64 of a 24 to 64 byte key";
    return nullptr;
  }
  if (std::string why; !curl::lib(&why)) {
    *error = "callbacks need libcurl: " + why;
    return nullptr;
  }
  return std::unique_ptr<CallbackSender>(new CallbackSender(loop, executor, cfg, log, std::move(*key)));
}

CallbackSender::CallbackSender(uv_loop_t* loop, Executor& executor, CallbackConfig cfg, ServerLog& log,
                               std::string key)
    : loop_(loop), executor_(executor), cfg_(std::move(cfg)), log_(log), key_(std::move(key)) {}

CallbackSender::~CallbackSender() {
  *alive_ = false;
}

std::string CallbackSender::sign(const std::string& key, const std::string& id, const std::string& timestamp,
                                 const std::string& body) {
  const std::string msg = id + "." + timestamp + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &len);
  return "v1," + base64(mac, len);
}

std::optional<std::string> CallbackSender::check_url(const std::string& url) const {
  std::string why;
  auto p = split_url(url, &why);
  if (!p) return why;
  if (p->scheme != "http" && p->scheme != "https")
    return "callback_url must be http:// or https://, got " + p->scheme + "://";
  if (p->has_userinfo) return "callback_url must not carry credentials";
  std::string hp = (p->host.find(':') != std::string::npos ? "[" + p->host + "]" : p->host) + ":" +
                   std::to_string(p->port);
  std::string plain = p->host + ":" + std::to_string(p->port);
  if (std::find(cfg_.allowed_hosts.begin(), cfg_.allowed_hosts.end(), plain) != cfg_.allowed_hosts.end() ||
      std::find(cfg_.allowed_hosts.begin(), cfg_.allowed_hosts.end(), hp) != cfg_.allowed_hosts.end())
    return std::nullopt;
  std::string list;
  for (const auto& h : cfg_.allowed_hosts) list += (list.empty() ? "" : ", ") + h;
  return "callback_url host " + plain + " is not in the server's callbacks.allowed_hosts (" +
         (list.empty() ? "none" : list) + ")";
}

void CallbackSender::deliver(const std::string& job_id, const std::string& url, std::string body) {
  if (shutting_down_) return;
  auto* d = new Delivery{};
  d->sender = this;
  d->alive = alive_;
  d->job_id = job_id;
  d->url = url;
  d->body = std::move(body);
  d->msg_id = "msg_" + job_id;  // the same for every retry, as the spec asks
  d->backoff_ms = cfg_.backoff_ms;
  d->key = key_;
  d->timeout_ms = cfg_.timeout_ms;
  uv_timer_init(loop_, &d->timer);
  d->timer.data = d;
  ++in_flight_;
  attempt(d);
}

void CallbackSender::attempt(Delivery* d) {
  ++d->attempt;
  d->work.data = d;
  executor_.pool_work_started();
  uv_queue_work(
      loop_, &d->work,
      [](uv_work_t* w) {
        auto* dv = static_cast<Delivery*>(w->data);
        const curl::Lib* c = curl::lib(&dv->error);
        if (!c) return;
        const std::string ts = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                  std::chrono::system_clock::now().time_since_epoch())
                                                  .count());
        CURL* h = c->easy_init();
        curl_slist* hs = nullptr;
        for (const std::string& line :
             {std::string("Content-Type: application/json"), "webhook-id: " + dv->msg_id,
              "webhook-timestamp: " + ts, "webhook-signature: " + sign(dv->key, dv->msg_id, ts, dv->body),
              std::string("Expect:")})
          hs = c->slist_append(hs, line.c_str());
        c->easy_setopt(h, CURLOPT_URL, dv->url.c_str());
        c->easy_setopt(h, CURLOPT_HTTPHEADER, hs);
        c->easy_setopt(h, CURLOPT_POST, 1L);
        c->easy_setopt(h, CURLOPT_POSTFIELDS, dv->body.data());
        c->easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(dv->body.size()));
        c->easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);  // never follow a redirect
        c->easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        c->easy_setopt(h, CURLOPT_NOPROXY, "*");  // the allowed host is called, not a proxy
        c->easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        c->easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(dv->timeout_ms));
        c->easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        c->easy_setopt(h, CURLOPT_USERAGENT, "wasmjail-callback");
        CURLcode rc = c->easy_perform(h);
        if (rc != CURLE_OK) dv->error = c->easy_strerror(rc);
        c->easy_getinfo(h, CURLINFO_RESPONSE_CODE, &dv->http_status);
        c->slist_free_all(hs);
        c->easy_cleanup(h);
      },
      [](uv_work_t* w, int) {
        auto* dv = static_cast<Delivery*>(w->data);
        if (dv->alive.expired()) {
          delete dv;  // the server is gone; nothing to report to
          return;
        }
        dv->sender->executor_.pool_work_finished();
        dv->sender->attempt_done(dv);
      });
}

void CallbackSender::attempt_done(Delivery* d) {
  const bool ok = d->error.empty() && d->http_status >= 200 && d->http_status < 300;
  auto finish = [this, d] {
    --in_flight_;
    uv_close(reinterpret_cast<uv_handle_t*>(&d->timer),
             [](uv_handle_t* h) { delete static_cast<Delivery*>(h->data); });
  };
  if (ok) {
    ++delivered_;
    log_.event("callback_delivered", {{"job", d->job_id},
                                      {"attempt", std::to_string(d->attempt)},
                                      {"status", std::to_string(d->http_status)}});
    return finish();
  }
  ++attempts_failed_;
  std::string why = !d->error.empty() ? d->error
                    : (d->http_status >= 300 && d->http_status < 400)
                        ? "HTTP " + std::to_string(d->http_status) + " (redirects are not followed)"
                        : "HTTP " + std::to_string(d->http_status);
  if (d->attempt >= cfg_.max_attempts || shutting_down_) {
    ++failed_;
    log_.event(
        "callback_failed",
        {{"job", d->job_id}, {"url", d->url}, {"attempts", std::to_string(d->attempt)}, {"error", why}});
    return finish();
  }
  log_.event("callback_retry", {{"job", d->job_id}, {"attempt", std::to_string(d->attempt)}, {"error", why}});
  waiting_.insert(d);
  d->error.clear();
  d->http_status = 0;
  const double wait = d->backoff_ms;
  d->backoff_ms *= 2;
  uv_timer_start(
      &d->timer,
      [](uv_timer_t* t) {
        auto* dd = static_cast<Delivery*>(t->data);
        dd->sender->waiting_.erase(dd);
        dd->sender->attempt(dd);
      },
      static_cast<uint64_t>(wait), 0);
}

void CallbackSender::shutdown() {
  shutting_down_ = true;
  // Retries waiting for their backoff give up now (attempts in flight end on their own).
  for (Delivery* d : waiting_) {
    uv_timer_stop(&d->timer);
    ++failed_;
    --in_flight_;
    log_.event("callback_failed", {{"job", d->job_id},
                                   {"url", d->url},
                                   {"attempts", std::to_string(d->attempt)},
                                   {"error", std::string("the server shut down before the next attempt")}});
    uv_close(reinterpret_cast<uv_handle_t*>(&d->timer),
             [](uv_handle_t* h) { delete static_cast<Delivery*>(h->data); });
  }
  waiting_.clear();
}

}  // namespace wj
