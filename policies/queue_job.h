// QueueJob: a job message of the NATS JetStream queue (README: "Scaling out"), text ->
// validated struct. No NATS here: the worker fetches the blobs a message refers to.
//
//   {"v": 1, "id": "q...", "policy": "default", "job": {<job spec, snake_case>}}
//
// A local source travels as a blob reference, {"blob": "sha256:<hex>", "kind": "file" |
// "folder", "name", "path", "read_write"}, in entry_module, import_modules[], inputs[] or stdin.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace wj {

constexpr uint64_t kEnvelopeVersion = 1;

// Job ids travel in subjects and KV keys: 1 to 64 of [A-Za-z0-9_-].
bool valid_job_id(const std::string& id);

struct QueueJob {
  std::string id;
  std::string policy;  // empty: the worker's default
  nlohmann::json job;
};

// Parses and checks a job message's envelope: shape, version, id. Errors say what and where.
std::optional<std::string> parse_queue_job(const std::string& body, QueueJob* out);

struct BlobRef {
  nlohmann::json* slot;  // the reference inside the job (valid while the job is)
  std::string field;     // "job.inputs[1]", for messages
  std::string digest;    // "sha256:<64 lower-case hex>"
  bool folder = false;   // a tar of a folder (inputs only), else a file
};

// Finds and checks every blob reference of a job: known keys, types, the digest's form, a
// module never a folder.
std::optional<std::string> find_blob_refs(nlohmann::json* job, std::vector<BlobRef>* refs);

// Replaces a reference by a local source at `path` (the worker's own copy of the blob),
// pinned by the digest when it is a file.
void point_blob_ref_at(const BlobRef& ref, const std::string& path);

}  // namespace wj
