// NatsQueue: the NATS JetStream side of scaling out (README: "Scaling out"). One connection
// (nats.c, its own threads) and the three things the queue keeps in JetStream:
//   - a WorkQueue stream of jobs (subject PREFIX.jobs; Nats-Msg-Id = job id de-duplicates),
//   - a KV bucket of results, written with create (the first stored result wins),
//   - a KV bucket of blobs (modules, inputs, output archives) addressed by sha256, cut into
//     chunks below the server's max_payload.
// Logs (PREFIX.logs.ID) and cancellation (PREFIX.cancel.ID) travel as plain NATS messages.
//
// Every call blocks (a request to the server) and is safe from any thread; the worker calls
// them off its libuv loop thread.
#pragma once

#include <nats/nats.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policies/queue_config.h"
#include "policies/queue_job.h"

namespace wj {

std::string new_queue_job_id();  // "q" + 24 hex digits, random

class NatsQueue {
 public:
  ~NatsQueue();
  NatsQueue(const NatsQueue&) = delete;
  NatsQueue& operator=(const NatsQueue&) = delete;

  // Connects (trying every URL) and binds the stream and buckets, creating them when
  // missing. nullptr with `error` when no server answers or JetStream is not ready.
  static std::unique_ptr<NatsQueue> open(const QueueSettings& s, std::string* error);

  const QueueSettings& settings() const { return s_; }
  natsConnection* connection() const { return nc_; }
  jsCtx* jetstream() const { return js_; }
  int64_t max_payload() const;
  std::string jobs_subject() const { return s_.subject_prefix + ".jobs"; }
  std::string logs_subject(const std::string& id) const { return s_.subject_prefix + ".logs." + id; }
  std::string cancel_subject(const std::string& id) const { return s_.subject_prefix + ".cancel." + id; }
  std::string state_subject(const std::string& id) const { return s_.subject_prefix + ".state." + id; }

  // Publishes a job message with Nats-Msg-Id = id. *duplicate: the stream had it already.
  std::optional<std::string> publish_job(const std::string& id, const std::string& body, bool* duplicate);

  // Results. create_result: true when stored, false with *exists when one was there first.
  std::optional<std::string> create_result(const std::string& id, const std::string& json, bool* exists);
  // *found false when there is none yet.
  std::optional<std::string> get_result(const std::string& id, std::string* json, bool* found);

  // Blobs: put returns "sha256:<hex>" (nothing is sent when the blob is already there);
  // get verifies the digest and refuses blobs over `max_bytes`.
  std::optional<std::string> put_blob(const std::string& bytes, std::string* digest);
  std::optional<std::string> get_blob(const std::string& digest, uint64_t max_bytes, std::string* bytes);
  bool has_blob(const std::string& digest);

  // Plain NATS publish (logs, cancel). Buffered by nats.c: does not wait for the server.
  void publish(const std::string& subject, const std::string& data);

 private:
  NatsQueue() = default;
  std::optional<std::string> bind(std::string* error);

  QueueSettings s_;
  natsOptions* opts_ = nullptr;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  kvStore* results_ = nullptr;
  kvStore* blobs_ = nullptr;
};

// "what failed: nats.c's text (and the JetStream error code)".
std::string nats_error(const std::string& what, natsStatus s, jsErrCode jerr = static_cast<jsErrCode>(0));

}  // namespace wj
