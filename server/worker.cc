#include "server/worker.h"

#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "server/queue_job.h"
#include "server/uv_work.h"
#include "storage/archive.h"

namespace wj {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

constexpr size_t kMaxMessageBytes = 16u << 20;
constexpr const char* kConsumer = "wasmjail";

std::string dump(const ojson& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result error_result(Status s, std::string msg) {
  Result r;
  r.status = s;
  r.exit_code = -1;
  r.error = std::move(msg);
  return r;
}

std::string host_name() {
  char h[256] = {0};
  gethostname(h, sizeof h - 1);
  return std::string(h) + ":" + std::to_string(getpid());
}

}  // namespace

struct Worker::Delivery {
  natsMsg* msg = nullptr;
  uint64_t delivered = 1, stream_seq = 0;
  std::string id;  // the job id (or "invalid-<seq>" for a message without a usable one)
  QueueJob qj;
  Submission sub;
  std::string policy_name;
  std::shared_ptr<JobRecord> rec;
  uv_timer_t* progress = nullptr;
  bool user_cancelled = false;
  bool settled = false;
  ~Delivery() {
    if (msg) natsMsg_Destroy(msg);
  }
};

Worker::Worker(uv_loop_t* loop, Executor& executor, NatsQueue& queue, const WorkerConfig& cfg,
               std::map<std::string, std::shared_ptr<const Policy>> policies, ServerLog& log)
    : loop_(loop), executor_(executor), queue_(queue), cfg_(cfg), policies_(std::move(policies)), log_(log) {
  name_ = host_name();
  slots_ = executor_.concurrency();
  uv_async_init(loop_, &inbox_async_, [](uv_async_t* a) { static_cast<Worker*>(a->data)->on_inbox(); });
  uv_async_init(loop_, &cancel_async_, [](uv_async_t* a) { static_cast<Worker*>(a->data)->on_cancels(); });
  inbox_async_.data = cancel_async_.data = this;
}

Worker::~Worker() {
  *alive_ = false;
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_fetching_ = true;
  }
  cv_.notify_all();
  if (fetcher_.joinable()) fetcher_.join();
  if (cancel_sub_) natsSubscription_Destroy(cancel_sub_);
  if (pull_) natsSubscription_Destroy(pull_);
  for (natsMsg* m : inbox_) natsMsg_Destroy(m);
}

std::optional<std::string> Worker::start() {
  // The durable consumer every worker shares. It is created here, not by the subscription:
  // nats.c deletes a consumer it created when that subscription goes, and a worker leaving
  // must not take the delivery counts of the others' jobs with it.
  const std::string& stream = queue_.settings().stream;
  int64_t ack_wait_ns = static_cast<int64_t>(cfg_.ack_wait_ms) * 1000000;
  jsConsumerInfo* ci = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus st = js_GetConsumerInfo(&ci, queue_.jetstream(), stream.c_str(), kConsumer, nullptr, &jerr);
  if (st == NATS_NOT_FOUND) {
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = kConsumer;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = ack_wait_ns;
    cc.MaxDeliver = -1;  // the worker itself ends a job past max_deliver, with a result
    cc.MaxAckPending = -1;
    cc.FilterSubject = nullptr;
    st = js_AddConsumer(&ci, queue_.jetstream(), stream.c_str(), &cc, nullptr, &jerr);
    if (st != NATS_OK) {
      std::string err = nats_error(
          "cannot create the durable consumer \"" + std::string(kConsumer) + "\" of stream " + stream, st,
          jerr);
      jsErrCode e2 = static_cast<jsErrCode>(0);
      st = js_GetConsumerInfo(&ci, queue_.jetstream(), stream.c_str(), kConsumer, nullptr, &e2);
      if (st != NATS_OK) return err;  // not created by another worker meanwhile either
    }
  }
  if (st != NATS_OK)
    return nats_error(
        "cannot read the durable consumer \"" + std::string(kConsumer) + "\" of stream " + stream, st, jerr);
  int64_t existing = ci->Config ? ci->Config->AckWait : ack_wait_ns;
  jsConsumerInfo_Destroy(ci);
  if (existing != ack_wait_ns)
    return "the queue's consumer \"" + std::string(kConsumer) + "\" has an ack wait of " +
           std::to_string(existing / 1000000) + " ms, this worker asks for " +
           std::to_string(ack_wait_ns / 1000000) + " ms: every worker of a stream must use the same ack_wait";
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Consumer = kConsumer;
  so.ManualAck = true;
  st = js_PullSubscribe(&pull_, queue_.jetstream(), queue_.jobs_subject().c_str(), kConsumer, nullptr, &so,
                        &jerr);
  if (st != NATS_OK) {
    pull_ = nullptr;
    return nats_error(
        "cannot bind the durable pull consumer \"" + std::string(kConsumer) + "\" on stream " + stream, st,
        jerr);
  }
  st = natsConnection_Subscribe(
      &cancel_sub_, queue_.connection(), (queue_.settings().subject_prefix + ".cancel.*").c_str(),
      [](natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
        auto* w = static_cast<Worker*>(closure);
        std::string subj = natsMsg_GetSubject(m);
        natsMsg_Destroy(m);
        std::string id = subj.substr(subj.rfind('.') + 1);
        if (!valid_job_id(id)) return;
        {
          std::lock_guard<std::mutex> g(w->mu_);
          w->cancel_ids_.push_back(id);
        }
        uv_async_send(&w->cancel_async_);
      },
      this);
  if (st != NATS_OK) {
    cancel_sub_ = nullptr;
    return nats_error("cannot subscribe to cancellations", st);
  }
  fetcher_ = std::thread([this] { fetch_loop(); });
  log_.event("worker_started", {{"worker", name_},
                                {"slots", std::to_string(slots_)},
                                {"stream", queue_.settings().stream},
                                {"ack_wait_ms", std::to_string(static_cast<long>(cfg_.ack_wait_ms))}});
  return std::nullopt;
}

void Worker::fetch_loop() {
  int errors = 0;
  for (;;) {
    size_t free_slots;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_fetching_ || in_flight_ < slots_; });
      if (stop_fetching_) return;
      free_slots = slots_ - in_flight_;
    }
    natsMsgList list{nullptr, 0};
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus st = natsSubscription_Fetch(&list, pull_, static_cast<int>(free_slots), 1000, &jerr);
    if (st == NATS_TIMEOUT || (st == NATS_OK && list.Count == 0)) {
      natsMsgList_Destroy(&list);
      errors = 0;
      continue;
    }
    if (st != NATS_OK) {
      natsMsgList_Destroy(&list);
      // Leader elections and lost servers: keep trying; say so now and then.
      if (errors++ % 20 == 0)
        std::fprintf(stderr, "wasmjail worker: %s\n", nats_error("fetch", st, jerr).c_str());
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait_for(lk, std::chrono::milliseconds(250), [&] { return stop_fetching_; });
      continue;
    }
    errors = 0;
    bool stopping;
    {
      std::lock_guard<std::mutex> g(mu_);
      stopping = stop_fetching_;
      for (int i = 0; i < list.Count; ++i) {
        if (stopping) {
          natsMsg_Nak(list.Msgs[i], nullptr);  // drain began while fetching: hand it back now
          natsMsg_Destroy(list.Msgs[i]);
        } else {
          inbox_.push_back(list.Msgs[i]);
          ++in_flight_;
        }
        list.Msgs[i] = nullptr;
      }
    }
    natsMsgList_Destroy(&list);
    uv_async_send(&inbox_async_);
  }
}

size_t Worker::in_flight() const {
  std::lock_guard<std::mutex> g(mu_);
  return in_flight_;
}

void Worker::on_inbox() {
  std::deque<natsMsg*> msgs;
  {
    std::lock_guard<std::mutex> g(mu_);
    msgs.swap(inbox_);
  }
  for (natsMsg* m : msgs) {
    auto d = std::make_shared<Delivery>();
    d->msg = m;
    ++stats_.fetched;
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
      d->delivered = meta->NumDelivered;
      d->stream_seq = meta->Sequence.Stream;
      jsMsgMetaData_Destroy(meta);
    }
    if (d->delivered > 1) ++stats_.redelivered;
    begin(d);
  }
}

void Worker::begin(const std::shared_ptr<Delivery>& d) {
  int len = natsMsg_GetDataLength(d->msg);
  std::string body(natsMsg_GetData(d->msg) ? natsMsg_GetData(d->msg) : "", static_cast<size_t>(len));
  std::string err;
  if (body.size() > kMaxMessageBytes)
    err = "the message is " + std::to_string(body.size()) + " bytes, more than 16MiB";
  else if (auto e = parse_queue_job(body, &d->qj))
    err = *e;
  d->id = err.empty() ? d->qj.id : "invalid-" + std::to_string(d->stream_seq);
  if (!err.empty()) {
    log_.event("job_rejected", {{"job", d->id}, {"error", err}});
    return complete(d, error_result(Status::kInvalidJob, "job message (stream sequence " +
                                                             std::to_string(d->stream_seq) + "): " + err));
  }
  if (active_.count(d->id)) {
    // The same job delivered again while this worker still runs it (its ack wait passed):
    // the running copy will answer for it.
    natsMsg_NakWithDelay(d->msg, static_cast<int64_t>(cfg_.ack_wait_ms), nullptr);
    ++stats_.duplicates;
    ++stats_.naked;
    return settle(d, "duplicate");
  }
  active_[d->id] = d;
  if (d->delivered > static_cast<uint64_t>(cfg_.max_deliver)) {
    Result r = error_result(
        Status::kInternalError,
        "redelivery: the job was delivered " + std::to_string(d->delivered) + " times (max_deliver " +
            std::to_string(cfg_.max_deliver) +
            ") without a stored result; the workers that took it died or stalled. Not run again.");
    ++stats_.failed_max_deliver;
    return complete(d, r);
  }
  // Off the loop: an existing result (a duplicate, or cancelled before it started), the
  // blobs, the job spec and its policy.
  struct Prep {
    bool exists = false, transient = false;
    std::string error;
    Status status = Status::kInvalidJob;
    Submission sub;
  };
  auto prep = std::make_shared<Prep>();
  std::string policy_name = d->qj.policy.empty() ? cfg_.default_policy : d->qj.policy;
  d->policy_name = policy_name;
  auto pol = policies_.find(policy_name);
  std::string cache = (cfg_.cache_dir.empty() ? cfg_.work_dir : cfg_.cache_dir) + "/blobs";
  std::string out_dir = cfg_.work_dir + "/" + d->id;
  std::shared_ptr<const Policy> policy = pol == policies_.end() ? nullptr : pol->second;
  uint64_t max_blob = cfg_.max_blob_bytes, cache_max = cfg_.cache_max_bytes;
  NatsQueue* q = &queue_;
  blocking(
      loop_,
      [prep, d, q, policy, policy_name, cache, out_dir, max_blob, cache_max] {
        auto prepare = [&] {
          std::string existing;
          if (auto e = q->get_result(d->id, &existing, &prep->exists)) {
            prep->transient = true;
            prep->error = *e;
            return;
          }
          if (prep->exists) return;
          if (!policy) {
            prep->error = "policy \"" + policy_name.substr(0, 64) + "\" is not allowed on this worker";
            return;
          }
          json job = d->qj.job;
          std::set<std::string> allowed;
          std::vector<BlobRef> refs;  // malformed references are the message's fault, not a setup error
          if (auto e = find_blob_refs(&job, &refs)) {
            prep->error = *e;
            return;
          }
          auto mat = materialize_blobs(&job, *q, cache, max_blob, &allowed);
          trim_blob_cache(cache, cache_max);
          if (auto e = mat) {
            prep->error = *e;
            prep->transient = natsConnection_Status(q->connection()) != NATS_CONN_STATUS_CONNECTED;
            prep->status = Status::kSetupError;
            return;
          }
          auto spec = parse_job_spec(job.dump(), "job " + d->id, cache);
          if (!spec) {
            prep->error = spec.error().str();
            return;
          }
          // Jobs from the queue are as untrusted as API jobs: no host path but its own blobs.
          auto check = [&](const StorageSpec& s) -> bool {
            if (s.source != StorageSource::kLocal || allowed.count(s.source_path)) return true;
            prep->error =
                s.field + ": local sources are not allowed in queued jobs (submit uploads files as blobs)";
            return false;
          };
          if (!check(spec.value().entry_module)) return;
          for (const auto& s : spec.value().import_modules)
            if (!check(s)) return;
          for (const auto& s : spec.value().inputs)
            if (!check(s)) return;
          if (spec.value().stdin_spec && spec.value().stdin_spec->kind == StdinSpec::Kind::kSource &&
              !check(spec.value().stdin_spec->source))
            return;
          for (const auto& o : spec.value().outputs)
            if (!o.source_path.empty()) {
              prep->error = o.field + ": an output may not name a host folder (source_path) in a queued job";
              return;
            }
          PrepareOptions po;
          RunOptions ro;
          if (auto over = options_for(spec.value(), policy, &po, &ro)) {
            prep->error = *over;
            return;
          }
          prep->sub.spec = std::move(spec.value());
          prep->sub.policy = policy;
          prep->sub.policy_name = policy_name;
          prep->sub.output_dir = out_dir;
        };
        // The message is hostile: nothing it holds may end this process.
        try {
          prepare();
        } catch (const std::exception& e) {
          prep->error = std::string("malformed job message: ") + e.what();
          prep->status = Status::kInvalidJob;
        }
      },
      [this, d, prep, alive = alive_] {
        if (!*alive) return;
        if (prep->exists) {
          ++stats_.duplicates;
          natsMsg_Ack(d->msg, nullptr);
          ++stats_.acked;
          log_.event("job_skipped", {{"job", d->id}, {"reason", "a result is stored already"}});
          return settle(d, "skip");
        }
        if (!prep->error.empty() && prep->transient) {
          log_.event("job_deferred", {{"job", d->id}, {"error", prep->error}});
          natsMsg_NakWithDelay(d->msg, 1000, nullptr);
          ++stats_.naked;
          return settle(d, "nak");
        }
        if (!prep->error.empty()) return complete(d, error_result(prep->status, prep->error));
        if (d->user_cancelled)
          return complete(d, error_result(Status::kCancelled, "cancelled before it started"));
        if (draining_) {
          natsMsg_Nak(d->msg, nullptr);
          ++stats_.naked;
          return settle(d, "nak");
        }
        d->sub = std::move(prep->sub);
        run(d);
      });
}

void Worker::run(const std::shared_ptr<Delivery>& d) {
  std::string err;
  std::error_code ec;
  fs::remove_all(d->sub.output_dir, ec);  // a previous attempt's leftovers on this machine
  d->rec = executor_.submit(std::move(d->sub), &err);
  if (!d->rec)
    return complete(d, error_result(Status::kInternalError, "the worker could not queue the job: " + err));
  log_.event("job_started",
             {{"job", d->id}, {"attempt", std::to_string(d->delivered)}, {"policy", d->policy_name}});
  queue_.publish(queue_.state_subject(d->id),
                 dump(ojson{{"state", "running"}, {"worker", name_}, {"attempt", d->delivered}}));
  // In-progress acks well inside the ack wait.
  d->progress = new uv_timer_t;
  uv_timer_init(loop_, d->progress);
  d->progress->data = d.get();
  auto every = static_cast<uint64_t>(std::max(200.0, cfg_.ack_wait_ms / 3));
  uv_timer_start(
      d->progress, [](uv_timer_t* t) { natsMsg_InProgress(static_cast<Delivery*>(t->data)->msg, nullptr); },
      every, every);
  std::string logs = queue_.logs_subject(d->id);
  std::weak_ptr<Delivery> wd = d;
  executor_.subscribe(d->rec, [this, wd, logs](const JobEvent& e) {
    auto dd = wd.lock();
    if (!dd) return;
    if (e.kind == JobEvent::kOutput) {
      ojson o{{"stream", e.stream == Stream::kStdout ? "stdout" : "stderr"},
              {"data", std::string(e.data, e.size)}};
      queue_.publish(logs, dump(o));
      return;
    }
    complete(dd, dd->rec->result);
  });
}

void Worker::complete(const std::shared_ptr<Delivery>& d, Result r) {
  if (d->progress) {
    uv_timer_stop(d->progress);
    uv_close(reinterpret_cast<uv_handle_t*>(d->progress),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    d->progress = nullptr;
  }
  // A job the drain stopped (not one a user cancelled) goes back to the queue at once.
  if (draining_ && r.status == Status::kCancelled && !d->user_cancelled) {
    natsMsg_Nak(d->msg, nullptr);
    ++stats_.naked;
    log_.event("job_returned", {{"job", d->id}, {"reason", "drain timeout"}});
    std::error_code ec;
    if (d->rec) fs::remove_all(cfg_.work_dir + "/" + d->id, ec);
    return settle(d, "nak");
  }
  ojson j = to_json(r);
  bool redelivery = r.status == Status::kInternalError && r.error.rfind("redelivery:", 0) == 0;
  if (redelivery) j["status"] = "failed";
  j["id"] = d->id;
  j["worker"] = name_;
  j["attempt"] = d->delivered;
  bool term = r.status == Status::kInvalidJob && !d->rec;  // malformed or unusable: never redeliver
  term = term || redelivery;
  std::vector<std::pair<std::string, std::string>> outputs = d->rec ? d->rec->outputs : decltype(outputs){};
  uint64_t max_blob = cfg_.max_blob_bytes;
  NatsQueue* q = &queue_;
  auto text = std::make_shared<std::string>();
  auto jj = std::make_shared<ojson>(std::move(j));
  blocking(
      loop_,
      [q, outputs, max_blob, jj, text] {
        if (!outputs.empty()) {
          std::string tar;
          PackStats ps;
          ojson names = ojson::object();
          for (const auto& [name, host] : outputs) names[name] = name;
          if (auto e = pack_folders(outputs, max_blob, &tar, &ps)) {
            (*jj)["outputs_error"] = "the outputs could not be archived: " + *e;
          } else {
            std::string digest;
            if (auto e2 = q->put_blob(tar, &digest))
              (*jj)["outputs_error"] = *e2;
            else
              (*jj)["outputs_archive"] = digest;
          }
          (*jj)["outputs"] = names;
          if (ps.skipped) (*jj)["outputs_skipped"] = ps.skipped;  // symlinks and special files
        }
        *text = dump(*jj);
        // A result over the server's message limit goes in a blob; the KV entry points to it.
        if (static_cast<int64_t>(text->size()) > q->max_payload() - 16384) {
          std::string digest;
          if (auto e = q->put_blob(*text, &digest))
            *text = dump(ojson{{"status", "internal_error"}, {"id", (*jj)["id"]}, {"error", *e}});
          else
            *text = dump(ojson{{"id", (*jj)["id"]}, {"result_blob", digest}, {"status", (*jj)["status"]}});
        }
      },
      [this, d, text, term, alive = alive_] {
        if (!*alive) return;
        store(d, *text, term);
      });
}

void Worker::store(const std::shared_ptr<Delivery>& d, std::string result_json, bool term) {
  NatsQueue* q = &queue_;
  struct Out {
    bool exists = false;
    std::optional<std::string> err;
  };
  auto out = std::make_shared<Out>();
  std::string id = d->id;
  blocking(
      loop_, [q, id, result_json, out] { out->err = q->create_result(id, result_json, &out->exists); },
      [this, d, out, term, result_json, alive = alive_] {
        if (!*alive) return;
        std::error_code ec;
        if (d->rec) fs::remove_all(cfg_.work_dir + "/" + d->id, ec);
        if (out->err) {
          // Not stored: the job goes back to the queue (at-least-once) and runs again.
          log_.event("job_store_failed", {{"job", d->id}, {"error", *out->err}});
          natsMsg_NakWithDelay(d->msg, 1000, nullptr);
          ++stats_.naked;
          return settle(d, "nak");
        }
        std::string status = "?";
        try {
          status = json::parse(result_json).value("status", "?");
        } catch (...) {
        }
        ojson done{{"event", "done"}, {"status", status}};
        if (d->rec) done["exit_code"] = d->rec->result.exit_code;
        queue_.publish(queue_.logs_subject(d->id), dump(done));
        if (term) {
          natsMsg_Term(d->msg, nullptr);
          ++stats_.terminated;
        } else {
          natsMsg_Ack(d->msg, nullptr);
          ++stats_.acked;
        }
        log_.event("job_finished", {{"job", d->id},
                                    {"status", status},
                                    {"stored", out->exists ? "no (a result was there first)" : "yes"},
                                    {"attempt", std::to_string(d->delivered)}});
        settle(d, term ? "term" : "ack");
      });
}

void Worker::settle(const std::shared_ptr<Delivery>& d, const char*) {
  if (d->settled) return;
  d->settled = true;
  auto it = active_.find(d->id);
  if (it != active_.end() && it->second == d) active_.erase(it);
  {
    std::lock_guard<std::mutex> g(mu_);
    --in_flight_;
  }
  cv_.notify_all();
  maybe_drained();
}

void Worker::on_cancels() {
  std::deque<std::string> ids;
  {
    std::lock_guard<std::mutex> g(mu_);
    ids.swap(cancel_ids_);
  }
  for (const auto& id : ids) {
    auto it = active_.find(id);
    if (it == active_.end()) continue;
    auto& d = it->second;
    d->user_cancelled = true;
    if (d->rec) executor_.cancel(d->rec->id);
    log_.event("job_cancel_requested", {{"job", id}});
  }
}

void Worker::drain(std::function<void()> done) {
  if (draining_) return;
  draining_ = true;
  drained_cb_ = std::move(done);
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_fetching_ = true;
  }
  cv_.notify_all();
  log_.event("drain_started", {{"running", std::to_string(active_.size())}});
  executor_.drain(cfg_.drain_timeout_ms, [this, alive = alive_] {
    if (!*alive) return;
    executor_drained_ = true;
    maybe_drained();
  });
}

void Worker::maybe_drained() {
  if (!draining_ || !executor_drained_ || closed_) return;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (in_flight_ > 0) return;
  }
  closed_ = true;
  if (fetcher_.joinable()) fetcher_.join();  // it stops within one fetch timeout (1 s)
  if (cancel_sub_) natsSubscription_Unsubscribe(cancel_sub_);
  natsConnection_FlushTimeout(queue_.connection(), 2000);  // the last acks and naks reach the server
  uv_close(reinterpret_cast<uv_handle_t*>(&inbox_async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&cancel_async_), nullptr);
  log_.event("drain_complete", {});
  if (drained_cb_) drained_cb_();
}

std::string Worker::metrics() const {
  std::ostringstream o;
  o << executor_metrics(executor_);
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n" << name << " " << v << "\n";
  };
  counter("wasmjail_queue_fetched_total", "Job messages fetched from the stream.", stats_.fetched);
  counter("wasmjail_queue_acked_total", "Job messages acked (result stored, or one was there).",
          stats_.acked);
  counter("wasmjail_queue_naked_total", "Job messages handed back for redelivery (drain, store failure).",
          stats_.naked);
  counter("wasmjail_queue_redelivered_total", "Job messages fetched that had been delivered before.",
          stats_.redelivered);
  counter("wasmjail_queue_terminated_total", "Job messages terminated (malformed, or past max_deliver).",
          stats_.terminated);
  counter("wasmjail_queue_duplicates_total", "Job messages whose job had a result already or ran here.",
          stats_.duplicates);
  counter("wasmjail_queue_max_deliver_total", "Jobs ended failed after max_deliver deliveries.",
          stats_.failed_max_deliver);
  o << "# HELP wasmjail_queue_in_flight Job messages held (fetched, not yet acked).\n# TYPE "
       "wasmjail_queue_in_flight gauge\n"
    << "wasmjail_queue_in_flight " << in_flight() << "\n";
  return o.str();
}

}  // namespace wj
