#include "server/gateway.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "policies/jobspec.h"
#include "server/queue_job.h"
#include "server/route.h"
#include "server/uv_work.h"
#include "storage/archive.h"
#include "supervisor/executor.h"

namespace wj {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

std::string dump(const ojson& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string iso8601(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tmv;
  gmtime_r(&secs, &tmv);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tmv.tm_year + 1900, tmv.tm_mon + 1,
                tmv.tm_mday, tmv.tm_hour, tmv.tm_min, tmv.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

void send_json(const std::shared_ptr<HttpExchange>& ex, int status, const ojson& body) {
  ex->respond(status, "application/json", dump(body) + "\n");
}

void send_error(const std::shared_ptr<HttpExchange>& ex, int status, const std::string& code,
                const std::string& msg) {
  send_json(ex, status, ojson{{"error", {{"code", code}, {"message", msg}}}});
}

// The stored result of `id` (a result blob fetched; outputs unpacked under output_root).
struct Fetched {
  bool found = false;
  std::string error;
  ojson result;
};

void fetch_result(NatsQueue& q, const std::string& id, const std::string& output_root, Fetched* f) {
  std::string text;
  if (auto e = q.get_result(id, &text, &f->found)) {
    f->error = *e;
    return;
  }
  if (!f->found) return;
  try {
    f->result = ojson::parse(text);
    if (f->result.contains("result_blob")) {
      std::string big;
      if (auto e = q.get_blob(f->result["result_blob"].get<std::string>(), 1ull << 32, &big)) {
        f->error = *e;
        return;
      }
      f->result = ojson::parse(big);
    }
  } catch (const std::exception& e) {
    f->error = std::string("the stored result is not JSON: ") + e.what();
    return;
  }
  if (f->result.contains("outputs_archive") && f->result["outputs_archive"].is_string() &&
      !output_root.empty()) {
    std::string dir = output_root + "/" + id;
    std::error_code ec;
    if (!fs::exists(dir + "/.unpacked", ec)) {
      std::string tar;
      fs::create_directories(dir, ec);
      auto e = q.get_blob(f->result["outputs_archive"].get<std::string>(), 1ull << 34, &tar);
      if (!e) e = unpack_archive(tar, dir, 1ull << 34);
      if (e)
        f->result["outputs_error"] = *e;
      else
        std::ofstream(dir + "/.unpacked").put('\n');
    }
    if (f->result.contains("outputs") && f->result["outputs"].is_object())
      for (auto it = f->result["outputs"].begin(); it != f->result["outputs"].end(); ++it)
        it.value() = dir + "/" + it.key();
  }
}

}  // namespace

struct Gateway::LogStream {
  std::shared_ptr<HttpExchange> ex;
  bool ended = false;
};

Gateway::Gateway(uv_loop_t* loop, NatsQueue& queue, const ServerConfig& cfg,
                 std::map<std::string, std::shared_ptr<const Policy>> policies)
    : loop_(loop), queue_(queue), cfg_(cfg), policies_(std::move(policies)) {
  uv_async_init(loop_, &async_, [](uv_async_t* a) { static_cast<Gateway*>(a->data)->on_nats(); });
  async_.data = this;
  auto cb = [](natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
    auto* g = static_cast<Gateway*>(closure);
    std::string subj = natsMsg_GetSubject(m);
    std::string data(natsMsg_GetData(m) ? natsMsg_GetData(m) : "",
                     static_cast<size_t>(natsMsg_GetDataLength(m)));
    natsMsg_Destroy(m);
    std::string id = subj.substr(subj.rfind('.') + 1);
    {
      std::lock_guard<std::mutex> lk(g->mu_);
      // Logs only for jobs someone reads here; states always (they are small).
      if (subj.find(".logs.") != std::string::npos && !g->watched_.count(id)) return;
      g->inbox_.emplace_back(std::move(subj), std::move(data));
    }
    uv_async_send(&g->async_);
  };
  const std::string& p = queue_.settings().subject_prefix;
  natsConnection_Subscribe(&state_sub_, queue_.connection(), (p + ".state.*").c_str(), cb, this);
  natsConnection_Subscribe(&logs_sub_, queue_.connection(), (p + ".logs.*").c_str(), cb, this);
}

Gateway::~Gateway() {
  *alive_ = false;
  if (state_sub_) natsSubscription_Destroy(state_sub_);
  if (logs_sub_) natsSubscription_Destroy(logs_sub_);
}

void Gateway::stop(std::function<void()> done) {
  stopping_ = true;
  if (state_sub_) natsSubscription_Unsubscribe(state_sub_);
  if (logs_sub_) natsSubscription_Unsubscribe(logs_sub_);
  for (auto& [id, s] : streams_)
    if (!s->ended && !s->ex->finished()) {
      s->ex->write_chunk(dump(ojson{{"event", "gateway_stopping"}}) + "\n");
      s->ex->end_stream();
    }
  streams_.clear();
  stopped_cb_ = std::move(done);
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), [](uv_handle_t* h) {
    auto* g = static_cast<Gateway*>(h->data);
    if (g->stopped_cb_) g->stopped_cb_();
  });
}

bool Gateway::visible(const std::string& id, const HttpClient& client) const {
  if (client.admin) return true;
  auto it = jobs_.find(id);
  return it != jobs_.end() && it->second.owner == client.owner;
}

void Gateway::remember(const std::string& id, const std::string& policy, const std::string& owner) {
  if (jobs_.count(id)) return;
  Known k;
  k.policy = policy;
  k.owner = owner;
  k.submitted_at = std::chrono::system_clock::now();
  jobs_[id] = k;
  order_.push_back(id);
  while (order_.size() > std::max<size_t>(cfg_.result_retention, 1)) {
    jobs_.erase(order_.front());
    order_.pop_front();
  }
}

void Gateway::on_nats() {
  std::deque<std::pair<std::string, std::string>> msgs;
  {
    std::lock_guard<std::mutex> lk(mu_);
    msgs.swap(inbox_);
  }
  for (auto& [subj, data] : msgs) {
    std::string id = subj.substr(subj.rfind('.') + 1);
    if (subj.find(".state.") != std::string::npos) {
      auto it = jobs_.find(id);
      if (it == jobs_.end()) continue;
      try {
        auto j = json::parse(data);
        it->second.state = j.value("state", it->second.state);
        it->second.worker = j.value("worker", std::string());
      } catch (...) {
      }
      continue;
    }
    bool done = data.find("\"event\":\"done\"") != std::string::npos;
    auto range = streams_.equal_range(id);
    for (auto it = range.first; it != range.second; ++it) {
      auto& s = it->second;
      if (s->ended) continue;
      if (!s->ex->write_chunk(data + "\n") || done) {
        if (done) s->ex->end_stream();
        s->ended = true;
      }
    }
    if (done) {
      std::lock_guard<std::mutex> lk(mu_);
      watched_.erase(id);
      streams_.erase(id);
    }
  }
}

void Gateway::handle(const std::shared_ptr<HttpExchange>& ex) {
  ++http_requests_;
  const HttpRequest& rq = ex->request();
  const std::string& p = rq.path;
  const std::string& m = rq.method;
  auto only = [&](const char* method) {
    if (m == method) return true;
    send_error(ex, 405, "method_not_allowed", m + " is not allowed on " + p);
    return false;
  };
  if (p == "/healthz") {
    if (only("GET"))
      send_json(ex, 200, ojson{{"status", stopping_ ? "stopping" : "ok"}, {"mode", "gateway"}});
    return;
  }
  if (p == "/metrics") {
    if (!only("GET")) return;
    std::ostringstream o;
    o << "# HELP wasmjail_gateway_submitted_total Jobs put on the NATS queue by this gateway.\n"
         "# TYPE wasmjail_gateway_submitted_total counter\nwasmjail_gateway_submitted_total "
      << submitted_
      << "\n# HELP wasmjail_http_requests_total HTTP requests received.\n"
         "# TYPE wasmjail_http_requests_total counter\nwasmjail_http_requests_total "
      << http_requests_ << "\n";
    ex->respond(200, "text/plain; version=0.0.4", o.str());
    return;
  }
  if (stopping_ && m != "GET") return send_error(ex, 503, "shutting_down", "the server is shutting down");
  if (p == "/v1/run") {
    if (only("POST")) submit(ex, true);
    return;
  }
  if (p == "/v1/jobs") {
    if (m == "POST")
      submit(ex, false);
    else if (m == "GET")
      list_jobs(ex);
    else
      send_error(ex, 405, "method_not_allowed", m + " is not allowed on " + p);
    return;
  }
  const std::string prefix = "/v1/jobs/";
  if (p.rfind(prefix, 0) == 0) {
    std::string rest = p.substr(prefix.size());
    std::string id = rest.substr(0, rest.find('/'));
    std::string sub = rest.size() > id.size() ? rest.substr(id.size()) : "";
    // Another client's job is not found, exactly like one that does not exist.
    if (!valid_job_id(id) || !visible(id, ex->client()))
      return send_error(ex, 404, "not_found", "no job with id \"" + id.substr(0, 80) + "\"");
    if (sub.empty()) {
      if (m == "GET")
        get_job(ex, id, 0);
      else if (m == "DELETE")
        cancel_job(ex, id);
      else
        send_error(ex, 405, "method_not_allowed", m + " is not allowed on " + p);
    } else if (sub == "/wait") {
      if (!only("GET")) return;
      auto timeout = wait_timeout_ms(rq.query, cfg_.max_wait_ms);
      if (!timeout)
        return send_error(ex, 400, "bad_request",
                          "timeout_ms must be a number of milliseconds from 0 to " +
                              std::to_string(static_cast<long>(cfg_.max_wait_ms)));
      get_job(ex, id, *timeout);
    } else if (sub == "/logs") {
      if (only("GET")) stream_logs(ex, id);
    } else {
      send_error(ex, 404, "not_found", "no such endpoint: " + p);
    }
    return;
  }
  send_error(ex, 404, "not_found", "no such endpoint: " + p);
}

void Gateway::submit(const std::shared_ptr<HttpExchange>& ex, bool wait) {
  const HttpRequest& rq = ex->request();
  try {
    json parsed = json::parse(rq.body);
    (void)parsed;
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number too large
    std::string what = e.what();
    if (auto at = what.find("parse error"); at != std::string::npos) what = what.substr(at);
    return send_error(ex, 400, "malformed_json", "request body: " + what);
  }
  cfg::Doc doc{"request"};
  YAML::Node root;
  try {
    root = cfg::parse_text(rq.body, doc);
  } catch (const cfg::ConfigError& e) {
    return send_error(ex, 400, "malformed_json", e.error.str());
  }
  std::string policy_name;
  YAML::Node job_node = root;
  if (root.IsMap() && root["job"]) {
    try {
      cfg::check_map(root, doc, "the request", {"job", "policy"});
      if (root["policy"]) policy_name = cfg::as_string(root["policy"], doc, "policy");
    } catch (const cfg::ConfigError& e) {
      return send_error(ex, 400, "invalid_job", e.error.str());
    }
    job_node = root["job"];
  }
  if (auto q = rq.query.find("policy"); q != rq.query.end()) {
    if (!policy_name.empty() && policy_name != q->second)
      return send_error(ex, 400, "bad_request",
                        "the policy is given twice (body and query) with different names");
    policy_name = q->second;
  }
  if (policy_name.empty()) policy_name = cfg_.default_policy;
  auto pol = policies_.find(policy_name);
  if (pol == policies_.end()) {
    std::string names;
    for (const auto& [n, _] : policies_) names += (names.empty() ? "" : ", ") + n;
    return send_error(ex, 400, "unknown_policy",
                      "policy \"" + policy_name + "\" is not offered here (offered: " + names + ")");
  }
  auto spec = parse_job_spec_node(job_node, "request", "/");
  if (!spec) return send_error(ex, 400, "invalid_job", spec.error().str());
  // As serve: no host file but under local_roots (those are uploaded as blobs).
  auto inside = [&](const StorageSpec& s) -> std::optional<std::string> {
    if (s.source != StorageSource::kLocal) return std::nullopt;
    if (cfg_.local_roots.empty())
      return s.field +
             ": local sources (localDirectory) are not allowed through the API; use inline or urlDownload";
    if (s.source_path.empty() || s.source_path[0] != '/')
      return s.field + ": a local source_path must be absolute through the API";
    std::error_code ec;
    fs::path real = fs::weakly_canonical(s.source_path, ec);
    for (const std::string& r : cfg_.local_roots) {
      auto rel = real.lexically_relative(fs::weakly_canonical(r, ec));
      if (!rel.empty() && *rel.begin() != "..") return std::nullopt;
    }
    return s.field + ": " + s.source_path + " is outside the server's local_roots";
  };
  for (const StorageSpec* s : {&spec.value().entry_module})
    if (auto e = inside(*s)) return send_error(ex, 400, "invalid_job", *e);
  for (const auto& s : spec.value().import_modules)
    if (auto e = inside(s)) return send_error(ex, 400, "invalid_job", *e);
  for (const auto& s : spec.value().inputs)
    if (auto e = inside(s)) return send_error(ex, 400, "invalid_job", *e);
  if (spec.value().stdin_spec && spec.value().stdin_spec->kind == StdinSpec::Kind::kSource)
    if (auto e = inside(spec.value().stdin_spec->source)) return send_error(ex, 400, "invalid_job", *e);
  for (const auto& s : spec.value().outputs)
    if (!s.source_path.empty())
      return send_error(ex, 400, "invalid_job",
                        s.field + ": outputs of API jobs are written under the server's output_root");
  {
    PrepareOptions po;
    RunOptions ro;
    if (auto over = options_for(spec.value(), pol->second, &po, &ro))
      return send_error(ex, 400, "invalid_job", *over);
  }
  std::string id = new_queue_job_id();
  struct Out {
    std::optional<std::string> err;
  };
  auto out = std::make_shared<Out>();
  auto sp = std::make_shared<JobSpec>(std::move(spec.value()));
  NatsQueue* q = &queue_;
  ++pending_;
  blocking(
      loop_,
      [q, sp, id, policy_name, out] {
        json job;
        if ((out->err = localize_job(*sp, *q, 256ull << 20, &job))) return;
        std::string body =
            json{{"v", kEnvelopeVersion}, {"id", id}, {"policy", policy_name}, {"job", job}}.dump();
        bool dup = false;
        out->err = q->publish_job(id, body, &dup);
      },
      [this, ex, id, policy_name, out, wait, alive = alive_] {
        if (!*alive) return;
        --pending_;
        if (out->err) return send_error(ex, 503, "queue_unavailable", *out->err);
        ++submitted_;
        remember(id, policy_name, ex->client().owner);
        if (!wait) return send_json(ex, 202, ojson{{"id", id}, {"state", "queued"}});
        get_job(ex, id, cfg_.max_wait_ms);
      });
}

void Gateway::get_job(const std::shared_ptr<HttpExchange>& ex, const std::string& id, double wait_ms) {
  // Polls the stored result every 100 ms until it is there or wait_ms has passed.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<long>(wait_ms));
  auto poll = std::make_shared<std::function<void()>>();
  NatsQueue* q = &queue_;
  std::string root = cfg_.output_root;
  std::weak_ptr<std::function<void()>> weak_poll = poll;
  *poll = [this, ex, id, deadline, q, root, weak_poll, alive = alive_] {
    auto f = std::make_shared<Fetched>();
    auto self = weak_poll.lock();
    blocking(
        loop_, [q, id, root, f] { fetch_result(*q, id, root, f.get()); },
        [this, ex, id, deadline, f, self, alive] {
          if (!*alive || ex->client_gone()) return;
          auto k = jobs_.find(id);
          if (!f->error.empty()) return send_error(ex, 503, "queue_unavailable", f->error);
          if (!f->found && k == jobs_.end())
            return send_error(ex, 404, "not_found", "no job with id \"" + id + "\"");
          if (!f->found && std::chrono::steady_clock::now() < deadline && !stopping_) {
            auto* t = new uv_timer_t;
            uv_timer_init(loop_, t);
            t->data = new std::shared_ptr<std::function<void()>>(self);
            uv_timer_start(
                t,
                [](uv_timer_t* tt) {
                  auto* fn = static_cast<std::shared_ptr<std::function<void()>>*>(tt->data);
                  (**fn)();
                  delete fn;
                  uv_close(reinterpret_cast<uv_handle_t*>(tt),
                           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
                },
                100, 0);
            return;
          }
          ojson o{{"id", id}, {"state", f->found ? std::string("done") : k->second.state}};
          if (k != jobs_.end()) {
            o["policy"] = k->second.policy;
            o["submitted_at"] = iso8601(k->second.submitted_at);
            if (!k->second.worker.empty()) o["worker"] = k->second.worker;
            if (f->found) k->second.state = "done";
          }
          if (f->found) o["result"] = f->result;
          send_json(ex, 200, o);
        });
  };
  (*poll)();
}

void Gateway::stream_logs(const std::shared_ptr<HttpExchange>& ex, const std::string& id) {
  auto f = std::make_shared<Fetched>();
  NatsQueue* q = &queue_;
  std::string root = cfg_.output_root;
  {
    // Watch first, so nothing published while the result is looked up is lost.
    std::lock_guard<std::mutex> lk(mu_);
    ++watched_[id];
  }
  blocking(
      loop_, [q, id, root, f] { fetch_result(*q, id, root, f.get()); },
      [this, ex, id, f, alive = alive_] {
        if (!*alive) return;
        auto unwatch = [this, id] {
          std::lock_guard<std::mutex> lk(mu_);
          if (--watched_[id] <= 0) watched_.erase(id);
        };
        if (!f->error.empty()) {
          unwatch();
          return send_error(ex, 503, "queue_unavailable", f->error);
        }
        if (!f->found && !jobs_.count(id)) {
          unwatch();
          return send_error(ex, 404, "not_found", "no job with id \"" + id + "\"");
        }
        ex->begin_stream(200, "application/x-ndjson");
        if (f->found) {
          // Done already: the final output from the result, then the done event.
          for (const char* s : {"stdout", "stderr"})
            if (f->result.contains(s) && f->result[s].is_string() && !f->result[s].get<std::string>().empty())
              ex->write_chunk(dump(ojson{{"stream", s}, {"data", f->result[s]}}) + "\n");
          ojson done{{"event", "done"}, {"status", ""}, {"exit_code", -1}};
          if (f->result.contains("status")) done["status"] = f->result["status"];
          if (f->result.contains("exit_code")) done["exit_code"] = f->result["exit_code"];
          ex->write_chunk(dump(done) + "\n");
          ex->end_stream();
          unwatch();
          return;
        }
        auto s = std::make_shared<LogStream>();
        s->ex = ex;
        streams_.emplace(id, s);
        ex->on_abort([this, id, s, unwatch] {
          s->ended = true;
          unwatch();
        });
      });
}

void Gateway::cancel_job(const std::shared_ptr<HttpExchange>& ex, const std::string& id) {
  struct Out {
    bool exists = false;
    std::optional<std::string> err;
    std::string status;
  };
  auto out = std::make_shared<Out>();
  NatsQueue* q = &queue_;
  bool known = jobs_.count(id) > 0;
  blocking(
      loop_,
      [q, id, out, known] {
        std::string text;
        bool found = false;
        if ((out->err = q->get_result(id, &text, &found))) return;
        if (found) {
          out->exists = true;
          try {
            out->status = json::parse(text).value("status", "");
          } catch (...) {
            out->status = "?";
          }
          return;
        }
        if (!known) return;
        ojson r = {
            {"status", "cancelled"}, {"exit_code", -1}, {"error", "cancelled through the API"}, {"id", id}};
        if ((out->err = q->create_result(id, dump(r), &out->exists))) return;
        q->publish(q->cancel_subject(id), "cancel");
      },
      [this, ex, id, out, known, alive = alive_] {
        if (!*alive) return;
        if (out->err) return send_error(ex, 503, "queue_unavailable", *out->err);
        if (out->exists && !out->status.empty())
          return send_error(ex, 409, "already_done",
                            "job " + id + " already ended with status " + out->status);
        if (!known) return send_error(ex, 404, "not_found", "no job with id \"" + id + "\"");
        send_json(ex, 202, ojson{{"id", id}, {"state", jobs_[id].state}, {"cancel_requested", true}});
      });
}

void Gateway::list_jobs(const std::shared_ptr<HttpExchange>& ex) {
  size_t limit = 100;
  if (auto it = ex->request().query.find("limit"); it != ex->request().query.end()) {
    char* end = nullptr;
    long v = std::strtol(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end || v < 1 || v > 10000)
      return send_error(ex, 400, "bad_request", "limit must be a number from 1 to 10000");
    limit = static_cast<size_t>(v);
  }
  ojson list = ojson::array();
  for (auto it = order_.rbegin(); it != order_.rend() && list.size() < limit; ++it) {
    if (!visible(*it, ex->client())) continue;
    const Known& k = jobs_[*it];
    list.push_back(ojson{
        {"id", *it}, {"state", k.state}, {"policy", k.policy}, {"submitted_at", iso8601(k.submitted_at)}});
  }
  send_json(ex, 200, ojson{{"jobs", list}});
}

}  // namespace wj
