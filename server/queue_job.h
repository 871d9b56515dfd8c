// The job message of the queue, and the blob references in it.
//
//   {"v": 1, "id": "q...", "policy": "default", "job": {<job spec, snake_case>}}
//
// `submit` turns each local source of the job (module files, input files and folders) into
// a blob reference, {"blob": "sha256:<hex>", "kind": "file"|"folder", "name", "path"}, and
// uploads the blob once. A worker never reads a host path named by a message: it refuses
// every local source, fetches the blobs into its own cache and points the job at them.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "policies/jobspec.h"
#include "policies/queue_job.h"
#include "server/queue.h"

namespace wj {

// The canonical JSON of a parsed job spec (every field, snake_case).
nlohmann::json job_spec_to_json(const JobSpec& spec);

// submit's side: the job as JSON with every local source uploaded and replaced by a blob
// reference. Errors name the field and the file.
std::optional<std::string> localize_job(const JobSpec& spec, NatsQueue& q, uint64_t max_blob_bytes,
                                        nlohmann::json* out);

// The worker's side: fetches the blobs a job refers to into `cache_dir` (verified by digest,
// kept for later jobs) and rewrites the references into local sources there. `allowed`
// receives the host paths the rewritten job may name.
std::optional<std::string> materialize_blobs(nlohmann::json* job, NatsQueue& q, const std::string& cache_dir,
                                             uint64_t max_blob_bytes, std::set<std::string>* allowed);

// Keeps the blob cache under `max_bytes`: least recently used entries go first, never one
// used in the last 10 minutes (a job about to start may still need it).
void trim_blob_cache(const std::string& cache_dir, uint64_t max_bytes);

}  // namespace wj
