#include "policies/queue_job.h"

#include <algorithm>
#include <cctype>

namespace wj {

using json = nlohmann::json;

bool valid_job_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; });
}

std::optional<std::string> parse_queue_job(const std::string& body, QueueJob* out) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number too large
    return std::string("the message is not JSON: ") + e.what();
  }
  if (!j.is_object()) return std::string("the message is not a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "v" && it.key() != "id" && it.key() != "policy" && it.key() != "job")
      return "the message has an unknown key \"" + it.key().substr(0, 64) +
             "\" (expected v, id, policy, job)";
  if (!j.contains("v") || !j["v"].is_number_unsigned() || j["v"].get<uint64_t>() != kEnvelopeVersion)
    return "the message's \"v\" must be " + std::to_string(kEnvelopeVersion);
  if (!j.contains("id") || !j["id"].is_string() || !valid_job_id(j["id"].get<std::string>()))
    return std::string("the message's \"id\" must be 1 to 64 letters, digits, '_' or '-'");
  out->id = j["id"].get<std::string>();
  if (j.contains("policy")) {
    if (!j["policy"].is_string()) return std::string("the message's \"policy\" must be a string");
    out->policy = j["policy"].get<std::string>();
  }
  if (!j.contains("job") || !j["job"].is_object())
    return std::string("the message's \"job\" must be an object");
  out->job = j["job"];
  return std::nullopt;
}

std::optional<std::string> find_blob_refs(json* job, std::vector<BlobRef>* refs) {
  auto one = [&](json& slot, const std::string& field, bool module) -> std::optional<std::string> {
    if (!slot.is_object() || !slot.contains("blob")) return std::nullopt;
    for (auto it = slot.begin(); it != slot.end(); ++it)
      if (it.key() != "blob" && it.key() != "kind" && it.key() != "name" && it.key() != "path" &&
          it.key() != "read_write")
        return field + ": a blob reference has an unknown key \"" + it.key().substr(0, 64) + "\"";
    const json& b = slot["blob"];
    if (!b.is_string()) return field + ".blob must be a string";
    std::string digest = b.get<std::string>();
    bool hex = digest.size() == 71 && digest.rfind("sha256:", 0) == 0 &&
               std::all_of(digest.begin() + 7, digest.end(),
                           [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
    if (!hex) return field + ".blob must be sha256:<64 lower-case hex digits>";
    std::string kind = "file";
    if (slot.contains("kind")) {
      if (!slot["kind"].is_string()) return field + ".kind must be file or folder";
      kind = slot["kind"].get<std::string>();
    }
    if (kind != "file" && kind != "folder") return field + ".kind must be file or folder";
    if (module && kind != "file") return field + ": a module blob must be a file";
    refs->push_back(BlobRef{&slot, field, digest, kind == "folder"});
    return std::nullopt;
  };
  if (!job->is_object()) return std::string("job must be an object");
  if (job->contains("entry_module"))
    if (auto e = one((*job)["entry_module"], "job.entry_module", true)) return e;
  if (job->contains("stdin"))
    if (auto e = one((*job)["stdin"], "job.stdin", true)) return e;  // a file, never a folder
  for (const char* list : {"import_modules", "inputs"}) {
    if (!job->contains(list) || !(*job)[list].is_array()) continue;
    json& a = (*job)[list];
    for (size_t i = 0; i < a.size(); ++i)
      if (auto e = one(a[i], "job." + std::string(list) + "[" + std::to_string(i) + "]",
                       std::string(list) != "inputs"))
        return e;
  }
  return std::nullopt;
}

void point_blob_ref_at(const BlobRef& ref, const std::string& path) {
  json& slot = *ref.slot;
  json local = {{"storage_source", "localDirectory"}, {"source_path", path}};
  for (const char* k : {"name", "path", "read_write"})
    if (slot.contains(k)) local[k] = slot[k];
  if (!ref.folder) local["checksum"] = ref.digest;
  slot = local;
}

}  // namespace wj
