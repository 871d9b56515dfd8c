#include "server/queue.h"

#include <sys/random.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "storage/storage.h"

namespace wj {

namespace {

constexpr int64_t kNsPerMs = 1000000;

struct MsgPtr {
  natsMsg* m = nullptr;
  ~MsgPtr() { natsMsg_Destroy(m); }
};
struct EntryPtr {
  kvEntry* e = nullptr;
  ~EntryPtr() { kvEntry_Destroy(e); }
};

bool is_hex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// A hint for the most common setup mistake: R3 on a single server.
std::string replicas_hint(int replicas) {
  return replicas > 1 ? "; a server that is not part of a cluster of at least " + std::to_string(replicas) +
                            " nodes needs queue.replicas: 1 in the config"
                      : "";
}

// A KV bucket, created when missing (another worker may create it at the same moment).
std::optional<std::string> bind_bucket(jsCtx* js, const std::string& name, int replicas, double ttl_ms,
                                       kvStore** out) {
  natsStatus s = js_KeyValue(out, js, name.c_str());
  if (s == NATS_OK) return std::nullopt;
  if (s != NATS_NOT_FOUND) return nats_error("cannot open the KV bucket " + name, s);
  kvConfig kc;
  kvConfig_Init(&kc);
  kc.Bucket = name.c_str();
  kc.History = 1;
  kc.Replicas = replicas;
  kc.TTL = static_cast<int64_t>(ttl_ms) * kNsPerMs;
  kc.StorageType = js_FileStorage;
  s = js_CreateKeyValue(out, js, &kc);
  if (s == NATS_OK) return std::nullopt;
  std::string err =
      nats_error("cannot create the KV bucket " + name + " (replicas " + std::to_string(replicas) + ")", s);
  if (js_KeyValue(out, js, name.c_str()) == NATS_OK) return std::nullopt;  // created by someone else
  return err + replicas_hint(replicas);
}

}  // namespace

std::string nats_error(const std::string& what, natsStatus s, jsErrCode jerr) {
  std::string m = what + ": " + natsStatus_GetText(s);
  natsStatus last = NATS_OK;
  const char* text = nats_GetLastError(&last);
  // nats.c prefixes "(file.c:line): "; the rest is worth showing when it says more.
  std::string t = text ? text : "";
  if (!t.empty() && t[0] == '(' && t.find("): ") != std::string::npos) t = t.substr(t.find("): ") + 3);
  if (!t.empty() && t != natsStatus_GetText(s)) m += " (" + t + ")";
  if (jerr != 0) m += " [JetStream error " + std::to_string(static_cast<int>(jerr)) + "]";
  return m;
}

std::string new_queue_job_id() {
  unsigned char b[12];
  if (getrandom(b, sizeof b, 0) != sizeof b) std::memset(b, 0, sizeof b);
  static const char* hex = "0123456789abcdef";
  std::string id = "q";
  for (unsigned char c : b) id += hex[c >> 4], id += hex[c & 15];
  return id;
}

NatsQueue::~NatsQueue() {
  if (results_) kvStore_Destroy(results_);
  if (blobs_) kvStore_Destroy(blobs_);
  if (js_) jsCtx_Destroy(js_);
  if (nc_) {
    natsConnection_FlushTimeout(nc_, 2000);
    natsConnection_Close(nc_);
    natsConnection_Destroy(nc_);
  }
  if (opts_) natsOptions_Destroy(opts_);
}

std::unique_ptr<NatsQueue> NatsQueue::open(const QueueSettings& s, std::string* error) {
  std::unique_ptr<NatsQueue> q(new NatsQueue());
  q->s_ = s;
  if (s.urls.empty()) {
    *error = "no NATS server given (--nats URL or queue.nats in the config)";
    return nullptr;
  }
  natsStatus st = natsOptions_Create(&q->opts_);
  std::vector<const char*> urls;
  for (const auto& u : s.urls) urls.push_back(u.c_str());
  if (st == NATS_OK) st = natsOptions_SetServers(q->opts_, urls.data(), static_cast<int>(urls.size()));
  if (st == NATS_OK) st = natsOptions_SetNoRandomize(q->opts_, false);
  if (st == NATS_OK) st = natsOptions_SetTimeout(q->opts_, static_cast<int64_t>(s.connect_timeout_ms));
  // Once connected, a lost server is not fatal: reconnect to any other, forever.
  if (st == NATS_OK) st = natsOptions_SetMaxReconnect(q->opts_, -1);
  if (st == NATS_OK) st = natsOptions_SetReconnectWait(q->opts_, 250);
  if (st == NATS_OK) st = natsOptions_SetReconnectBufSize(q->opts_, 64 << 20);
  if (st == NATS_OK) st = natsOptions_SetName(q->opts_, "wasmjail");
  if (st == NATS_OK && !s.user.empty())
    st = natsOptions_SetUserInfo(q->opts_, s.user.c_str(), s.password.c_str());
  if (st == NATS_OK && !s.creds_file.empty())
    st = natsOptions_SetUserCredentialsFromFiles(q->opts_, s.creds_file.c_str(), nullptr);
  if (st == NATS_OK && !s.nkey_seed_file.empty())
    st = natsOptions_SetNKeyFromSeed(q->opts_, s.nkey.c_str(), s.nkey_seed_file.c_str());
  bool tls = !s.tls_ca.empty() || !s.tls_cert.empty() ||
             std::any_of(s.urls.begin(), s.urls.end(),
                         [](const std::string& u) { return u.rfind("tls://", 0) == 0; });
  if (st == NATS_OK && tls) st = natsOptions_SetSecure(q->opts_, true);
  if (st == NATS_OK && !s.tls_ca.empty())
    st = natsOptions_LoadCATrustedCertificates(q->opts_, s.tls_ca.c_str());
  if (st == NATS_OK && !s.tls_cert.empty())
    st = natsOptions_LoadCertificatesChain(q->opts_, s.tls_cert.c_str(), s.tls_key.c_str());
  if (st != NATS_OK) {
    *error = nats_error("NATS options (credentials or TLS files)", st);
    return nullptr;
  }
  std::string joined;
  for (const auto& u : s.urls) joined += (joined.empty() ? "" : ",") + u;
  st = natsConnection_Connect(&q->nc_, q->opts_);
  if (st != NATS_OK) {
    q->nc_ = nullptr;
    *error = nats_error("cannot connect to NATS at " + joined, st);
    return nullptr;
  }
  if (auto e = q->bind(error)) {
    *error = *e;
    return nullptr;
  }
  return q;
}

std::optional<std::string> NatsQueue::bind(std::string*) {
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 5000;
  natsStatus st = natsConnection_JetStream(&js_, nc_, &jo);
  if (st != NATS_OK) return nats_error("JetStream context", st);
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  st = js_GetStreamInfo(&si, js_, s_.stream.c_str(), nullptr, &jerr);
  if (st == NATS_NOT_FOUND) {
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    std::string subj = jobs_subject();
    const char* subjects[] = {subj.c_str()};
    sc.Name = s_.stream.c_str();
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Retention = js_WorkQueuePolicy;
    sc.Storage = js_FileStorage;
    sc.Replicas = s_.replicas;
    sc.Duplicates = static_cast<int64_t>(s_.duplicate_window_ms) * kNsPerMs;
    st = js_AddStream(&si, js_, &sc, nullptr, &jerr);
    if (st != NATS_OK) {
      std::string err = nats_error("cannot create the JetStream stream " + s_.stream + " (replicas " +
                                       std::to_string(s_.replicas) + ")",
                                   st, jerr);
      jsErrCode e2 = static_cast<jsErrCode>(0);
      if (js_GetStreamInfo(&si, js_, s_.stream.c_str(), nullptr, &e2) != NATS_OK)
        return err + replicas_hint(s_.replicas);
    }
  } else if (st != NATS_OK) {
    return nats_error("cannot read the JetStream stream " + s_.stream, st, jerr);
  }
  if (si) jsStreamInfo_Destroy(si);
  if (auto e = bind_bucket(js_, s_.results_bucket, s_.replicas, s_.result_ttl_ms, &results_)) return e;
  if (auto e = bind_bucket(js_, s_.blobs_bucket, s_.replicas, s_.blob_ttl_ms, &blobs_)) return e;
  return std::nullopt;
}

int64_t NatsQueue::max_payload() const {
  return natsConnection_GetMaxPayload(nc_);
}

std::optional<std::string> NatsQueue::publish_job(const std::string& id, const std::string& body,
                                                  bool* duplicate) {
  MsgPtr m;
  natsStatus st =
      natsMsg_Create(&m.m, jobs_subject().c_str(), nullptr, body.data(), static_cast<int>(body.size()));
  if (st == NATS_OK) st = natsMsgHeader_Set(m.m, "Nats-Msg-Id", id.c_str());
  if (st != NATS_OK) return nats_error("cannot build the job message", st);
  jsPubAck* pa = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  st = js_PublishMsg(&pa, js_, m.m, nullptr, &jerr);
  if (st != NATS_OK) return nats_error("cannot publish job " + id + " to " + jobs_subject(), st, jerr);
  *duplicate = pa->Duplicate;
  jsPubAck_Destroy(pa);
  return std::nullopt;
}

std::optional<std::string> NatsQueue::create_result(const std::string& id, const std::string& json,
                                                    bool* exists) {
  *exists = false;
  uint64_t rev = 0;
  natsStatus st = kvStore_Create(&rev, results_, id.c_str(), json.data(), static_cast<int>(json.size()));
  if (st == NATS_OK) return std::nullopt;
  std::string err = nats_error("cannot store the result of " + id, st);
  // "wrong last sequence": a result was stored first. Anything else is a real failure.
  EntryPtr e;
  if (kvStore_Get(&e.e, results_, id.c_str()) == NATS_OK) {
    *exists = true;
    return std::nullopt;
  }
  return err;
}

std::optional<std::string> NatsQueue::get_result(const std::string& id, std::string* json, bool* found) {
  *found = false;
  EntryPtr e;
  natsStatus st = kvStore_Get(&e.e, results_, id.c_str());
  if (st == NATS_NOT_FOUND) return std::nullopt;
  if (st != NATS_OK) return nats_error("cannot read the result of " + id, st);
  json->assign(static_cast<const char*>(kvEntry_Value(e.e)), static_cast<size_t>(kvEntry_ValueLen(e.e)));
  *found = true;
  return std::nullopt;
}

bool NatsQueue::has_blob(const std::string& digest) {
  if (digest.rfind("sha256:", 0) != 0 || !is_hex64(digest.substr(7))) return false;
  EntryPtr e;
  if (kvStore_Get(&e.e, blobs_, (digest.substr(7) + ".meta").c_str()) != NATS_OK) return false;
  // An upload older than half the TTL is refreshed by the next put (chunks expire first).
  int64_t age_ms = (nats_NowInNanoSeconds() - kvEntry_Created(e.e)) / kNsPerMs;
  return age_ms < s_.blob_ttl_ms / 2;
}

std::optional<std::string> NatsQueue::put_blob(const std::string& bytes, std::string* digest) {
  std::string hex = sha256_hex(bytes.data(), bytes.size());
  *digest = "sha256:" + hex;
  if (has_blob(*digest)) return std::nullopt;
  // A chunk plus the KV message's subject and headers must stay under max_payload.
  int64_t mp = max_payload();
  size_t chunk = static_cast<size_t>(std::max<int64_t>(mp - 16384, 4096));
  size_t n = bytes.empty() ? 0 : (bytes.size() + chunk - 1) / chunk;
  for (size_t i = 0; i < n; ++i) {
    size_t off = i * chunk, len = std::min(chunk, bytes.size() - off);
    uint64_t rev = 0;
    std::string key = hex + "." + std::to_string(i);
    natsStatus st = kvStore_Put(&rev, blobs_, key.c_str(), bytes.data() + off, static_cast<int>(len));
    if (st != NATS_OK)
      return nats_error("cannot upload blob " + *digest + " (chunk " + std::to_string(i) + ")", st);
  }
  // The manifest goes last: a blob is visible only once every chunk is stored.
  std::string meta = nlohmann::json{{"size", bytes.size()}, {"chunks", n}, {"chunk_bytes", chunk}}.dump();
  uint64_t rev = 0;
  natsStatus st = kvStore_PutString(&rev, blobs_, (hex + ".meta").c_str(), meta.c_str());
  if (st != NATS_OK) return nats_error("cannot upload blob " + *digest + " (manifest)", st);
  return std::nullopt;
}

std::optional<std::string> NatsQueue::get_blob(const std::string& digest, uint64_t max_bytes,
                                               std::string* bytes) {
  if (digest.rfind("sha256:", 0) != 0 || !is_hex64(digest.substr(7)))
    return "blob \"" + digest.substr(0, 80) + "\" is not sha256:<64 lower-case hex digits>";
  std::string hex = digest.substr(7);
  EntryPtr me;
  natsStatus st = kvStore_Get(&me.e, blobs_, (hex + ".meta").c_str());
  if (st == NATS_NOT_FOUND)
    return "blob " + digest + " is not in the bucket " + s_.blobs_bucket + " (never uploaded, or expired)";
  if (st != NATS_OK) return nats_error("cannot read blob " + digest, st);
  uint64_t size = 0, chunks = 0;
  try {
    auto j = nlohmann::json::parse(std::string(kvEntry_ValueString(me.e)));
    size = j.at("size").get<uint64_t>();
    chunks = j.at("chunks").get<uint64_t>();
  } catch (const std::exception&) {
    return "blob " + digest + " has a malformed manifest";
  }
  if (size > max_bytes)
    return "blob " + digest + " is " + std::to_string(size) + " bytes, more than the " +
           std::to_string(max_bytes) + " allowed (max_blob_bytes)";
  if (chunks > size + 1) return "blob " + digest + " has a malformed manifest";
  bytes->clear();
  bytes->reserve(size);
  for (uint64_t i = 0; i < chunks; ++i) {
    EntryPtr ce;
    st = kvStore_Get(&ce.e, blobs_, (hex + "." + std::to_string(i)).c_str());
    if (st != NATS_OK)
      return nats_error("cannot read blob " + digest + " (chunk " + std::to_string(i) + ")", st);
    bytes->append(static_cast<const char*>(kvEntry_Value(ce.e)), static_cast<size_t>(kvEntry_ValueLen(ce.e)));
    if (bytes->size() > size) return "blob " + digest + " is longer than its manifest says";
  }
  if (bytes->size() != size || sha256_hex(bytes->data(), bytes->size()) != hex)
    return "blob " + digest + " does not match its digest (corrupt or incomplete upload)";
  return std::nullopt;
}

void NatsQueue::publish(const std::string& subject, const std::string& data) {
  natsConnection_Publish(nc_, subject.c_str(), data.data(), static_cast<int>(data.size()));
}

}  // namespace wj
