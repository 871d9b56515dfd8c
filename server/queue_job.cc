#include "server/queue_job.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "policies/config_util.h"
#include "storage/archive.h"
#include "storage/storage.h"

#include <openssl/evp.h>

namespace wj {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

json storage_to_json(const StorageSpec& s) {
  json j = json::object();
  j["storage_source"] = s.source == StorageSource::kInline        ? "inline"
                        : s.source == StorageSource::kUrlDownload ? "urlDownload"
                                                                  : "localDirectory";
  if (!s.name.empty()) j["name"] = s.name;
  if (!s.url.empty()) j["url"] = s.url;
  if (!s.source_path.empty()) j["source_path"] = s.source_path;
  if (!s.path.empty()) j["path"] = s.path;
  if (!s.checksum.empty()) j["checksum"] = s.checksum;
  if (s.read_write) j["read_write"] = true;
  return j;
}

std::string bytes_text(uint64_t b) {
  return std::to_string(b) + "B";
}
std::string ms_text(double ms) {
  return std::to_string(static_cast<int64_t>(ms * 1000)) + "us";
}

std::string resolve(const JobSpec& spec, const std::string& p) {
  if (!p.empty() && p[0] == '/') return p;
  return (fs::path(spec.base_dir) / p).lexically_normal().string();
}

// The blob cache's entry for a digest, filled once (written to a temporary name, renamed).
std::optional<std::string> cache_file(const std::string& dir, const std::string& hex,
                                      const std::string& bytes, std::string* path) {
  *path = dir + "/" + hex;
  struct stat sb;
  if (lstat(path->c_str(), &sb) == 0 && S_ISREG(sb.st_mode) &&
      static_cast<size_t>(sb.st_size) == bytes.size()) {
    utimensat(AT_FDCWD, path->c_str(), nullptr, AT_SYMLINK_NOFOLLOW);  // recently used
    return std::nullopt;
  }
  std::string tmp =
      *path + ".tmp" + std::to_string(getpid()) + "." + std::to_string(reinterpret_cast<uintptr_t>(&bytes));
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return "blob cache: cannot create " + tmp + ": " + std::strerror(errno);
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t w = write(fd, bytes.data() + off, bytes.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = errno;
      close(fd);
      unlink(tmp.c_str());
      return "blob cache: cannot write " + tmp + ": " + std::strerror(e);
    }
    off += static_cast<size_t>(w);
  }
  close(fd);
  if (rename(tmp.c_str(), path->c_str()) != 0) {
    int e = errno;
    unlink(tmp.c_str());
    return "blob cache: cannot rename to " + *path + ": " + std::strerror(e);
  }
  return std::nullopt;
}

std::string base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace

json job_spec_to_json(const JobSpec& spec) {
  json j = json::object();
  j["entry_module"] = storage_to_json(spec.entry_module);
  j["entry_point"] = spec.entry_point;
  json env = json::object();
  for (const auto& [k, v] : spec.env) env[k] = v;
  if (!spec.env.empty()) j["environment_variables"] = env;
  if (!spec.parameters.empty()) j["parameters"] = spec.parameters;
  if (spec.argv0) j["argv0"] = *spec.argv0;
  auto list = [](const std::vector<StorageSpec>& v) {
    json a = json::array();
    for (const auto& s : v) a.push_back(storage_to_json(s));
    return a;
  };
  if (!spec.import_modules.empty()) j["import_modules"] = list(spec.import_modules);
  if (!spec.inputs.empty()) j["inputs"] = list(spec.inputs);
  if (!spec.outputs.empty()) {
    json a = json::array();
    for (const auto& o : spec.outputs) {
      json x = {{"name", o.name}};
      if (!o.path.empty()) x["path"] = o.path;
      a.push_back(x);
    }
    j["outputs"] = a;
  }
  if (spec.stdin_spec) {
    const StdinSpec& st = *spec.stdin_spec;
    // Text travels as base64: a JSON string cannot hold every byte.
    if (st.kind == StdinSpec::Kind::kText)
      j["stdin"] = {{"base64", base64(st.data)}};
    else if (st.kind == StdinSpec::Kind::kBase64)
      j["stdin"] = {{"base64", st.data}};
    else
      j["stdin"] = storage_to_json(st.source);
  }
  const Limits& l = spec.limits;
  json lim = json::object();
  if (l.wall_time_ms) lim["wall_time"] = ms_text(*l.wall_time_ms);
  if (l.cpu_time_ms) lim["cpu_time"] = ms_text(*l.cpu_time_ms);
  if (l.memory) lim["memory"] = bytes_text(*l.memory);
  if (l.wasm_memory) lim["wasm_memory"] = bytes_text(*l.wasm_memory);
  if (l.stdout_bytes) lim["stdout_bytes"] = bytes_text(*l.stdout_bytes);
  if (l.stderr_bytes) lim["stderr_bytes"] = bytes_text(*l.stderr_bytes);
  if (l.output_bytes) lim["output_bytes"] = bytes_text(*l.output_bytes);
  if (l.open_files) lim["open_files"] = *l.open_files;
  if (l.module_bytes) lim["module_bytes"] = bytes_text(*l.module_bytes);
  if (!lim.empty()) j["limits"] = lim;
  return j;
}

std::optional<std::string> localize_job(const JobSpec& spec, NatsQueue& q, uint64_t max_blob_bytes,
                                        json* out) {
  *out = job_spec_to_json(spec);
  auto upload = [&](const StorageSpec& s, bool module, json* slot) -> std::optional<std::string> {
    if (s.source != StorageSource::kLocal) return std::nullopt;
    std::string path = resolve(spec, s.source_path);
    std::error_code ec;
    std::string bytes, kind = "file";
    if (fs::is_directory(path, ec)) {
      if (module) {
        std::vector<std::string> found;
        for (const auto& e : fs::directory_iterator(path, ec))
          if (e.path().extension() == ".wasm") found.push_back(e.path().string());
        if (found.size() != 1)
          return s.field + ": folder " + path + " holds " + std::to_string(found.size()) +
                 " .wasm files; it must hold exactly one (or name the file)";
        path = found[0];
      } else {
        kind = "folder";
        if (auto e = pack_folders({{"tree", path}}, max_blob_bytes, &bytes))
          return s.field + ": " + path + ": " + *e;
      }
    }
    if (kind == "file") {
      std::vector<uint8_t> b;
      if (auto e = read_file_capped(path, max_blob_bytes, &b, "blob size limit")) return s.field + ": " + *e;
      bytes.assign(b.begin(), b.end());
      if (!s.checksum.empty() && s.checksum != "sha256:" + sha256_hex(bytes.data(), bytes.size()))
        return s.field + ": " + path + " does not match its checksum " + s.checksum;
    }
    std::string digest;
    if (auto e = q.put_blob(bytes, &digest)) return s.field + ": " + *e;
    json ref = {{"blob", digest}, {"kind", kind}};
    if (!s.name.empty()) ref["name"] = s.name;
    if (!s.path.empty()) ref["path"] = s.path;
    if (s.read_write) ref["read_write"] = true;
    *slot = ref;
    return std::nullopt;
  };
  if (auto e = upload(spec.entry_module, true, &(*out)["entry_module"])) return e;
  for (size_t i = 0; i < spec.import_modules.size(); ++i)
    if (auto e = upload(spec.import_modules[i], true, &(*out)["import_modules"][i])) return e;
  for (size_t i = 0; i < spec.inputs.size(); ++i)
    if (auto e = upload(spec.inputs[i], false, &(*out)["inputs"][i])) return e;
  if (spec.stdin_spec) {
    const StdinSpec& st = *spec.stdin_spec;
    if (st.kind == StdinSpec::Kind::kSource) {
      if (auto e = upload(st.source, true, &(*out)["stdin"])) return e;  // a file, like a module
    } else if (st.kind == StdinSpec::Kind::kText && st.data.size() > (64u << 10)) {
      // Large text goes as a blob, not in the message (which must stay under max_payload).
      std::string digest;
      if (auto e = q.put_blob(st.data, &digest)) return "stdin: " + *e;
      (*out)["stdin"] = json{{"blob", digest}, {"kind", "file"}};
    }
  }
  return std::nullopt;
}

std::optional<std::string> materialize_blobs(json* job, NatsQueue& q, const std::string& cache_dir,
                                             uint64_t max_blob_bytes, std::set<std::string>* allowed) {
  std::vector<BlobRef> refs;
  if (auto e = find_blob_refs(job, &refs)) return e;
  std::error_code ec;
  if (!refs.empty()) fs::create_directories(cache_dir, ec);
  for (const BlobRef& r : refs) {
    std::string bytes;
    if (auto e = q.get_blob(r.digest, max_blob_bytes, &bytes)) return r.field + ": " + *e;
    std::string hex = r.digest.substr(7), path;
    if (!r.folder) {
      if (auto e = cache_file(cache_dir, hex, bytes, &path)) return r.field + ": " + *e;
    } else {
      std::string dir = cache_dir + "/" + hex + ".d";
      if (!fs::is_directory(dir, ec)) {
        std::string tmp = dir + ".tmp" + std::to_string(getpid());
        fs::remove_all(tmp, ec);
        if (auto e = unpack_archive(bytes, tmp, max_blob_bytes)) {
          fs::remove_all(tmp, ec);
          return r.field + ": folder blob " + r.digest + ": " + *e;
        }
        fs::rename(tmp, dir, ec);
        if (ec && !fs::is_directory(dir)) return r.field + ": blob cache: " + ec.message();
        fs::remove_all(tmp, ec);
      }
      utimensat(AT_FDCWD, dir.c_str(), nullptr, AT_SYMLINK_NOFOLLOW);
      path = dir + "/tree";
    }
    point_blob_ref_at(r, path);
    allowed->insert(path);
  }
  return std::nullopt;
}

void trim_blob_cache(const std::string& cache_dir, uint64_t max_bytes) {
  struct Item {
    fs::file_time_type used;
    uint64_t bytes;
    fs::path path;
  };
  std::vector<Item> items;
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(cache_dir, ec)) {
    std::error_code e2;
    if (e.is_symlink(e2)) continue;
    uint64_t bytes = 0;
    if (e.is_directory(e2)) {
      for (const auto& f : fs::recursive_directory_iterator(e.path(), fs::directory_options::none, e2))
        if (f.is_regular_file(e2)) bytes += f.file_size(e2);
    } else if (e.is_regular_file(e2)) {
      bytes = e.file_size(e2);
    }
    items.push_back({e.last_write_time(e2), bytes, e.path()});
    total += bytes;
  }
  if (total <= max_bytes) return;
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.used < b.used; });
  auto recent = fs::file_time_type::clock::now() - std::chrono::minutes(10);
  for (const auto& it : items) {
    if (total <= max_bytes) break;
    if (it.used > recent) continue;
    fs::remove_all(it.path, ec);
    if (!ec) total -= it.bytes;
  }
}

}  // namespace wj
