#include "storage/storage.h"

#include "storage/curl_lib.h"
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

namespace wj {
namespace fs = std::filesystem;

std::optional<std::string> read_file_capped(const std::string& path, uint64_t cap, std::vector<uint8_t>* out,
                                            const char* limit) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd) return "cannot read " + path + ": " + std::strerror(errno);
  return read_fd_capped(fd.get(), path, cap, out, limit);
}

std::optional<std::string> decode_data_url(const std::string& url, uint64_t cap, std::vector<uint8_t>* out) {
  if (url.rfind("data:", 0) != 0) return "not a data: URL";
  size_t comma = url.find(',');
  if (comma == std::string::npos) return "data: URL has no ',' before its data";
  std::string meta = url.substr(5, comma - 5);
  std::string data = url.substr(comma + 1);
  bool base64 = meta.size() >= 7 && meta.compare(meta.size() - 7, 7, ";base64") == 0;
  out->clear();
  if (base64) {
    // Whitespace is allowed inside base64 in data: URLs written across lines.
    std::string clean;
    for (char c : data)
      if (c != ' ' && c != '\n' && c != '\r' && c != '\t') clean += c;
    if (clean.size() / 4 * 3 > cap + 3) return "data: URL decodes to more than the limit of " + std::to_string(cap) + " bytes";
    std::unique_ptr<EVP_ENCODE_CTX, decltype(&EVP_ENCODE_CTX_free)> ctx(EVP_ENCODE_CTX_new(), EVP_ENCODE_CTX_free);
    EVP_DecodeInit(ctx.get());
    out->resize(clean.size() / 4 * 3 + 3);
    int n1 = 0, n2 = 0;
    if (EVP_DecodeUpdate(ctx.get(), out->data(), &n1, reinterpret_cast<const unsigned char*>(clean.data()),
                         static_cast<int>(clean.size())) < 0 ||
        EVP_DecodeFinal(ctx.get(), out->data() + n1, &n2) != 1 || (clean.size() % 4) != 0)
      return "data: URL has invalid base64";
    out->resize(static_cast<size_t>(n1 + n2));
  } else {
    std::string why;
    const curl::Lib* c = curl::lib(&why);
    if (!c) return "data: URL cannot be percent-decoded: " + why;
    int len = 0;
    char* dec = c->easy_unescape(nullptr, data.c_str(), static_cast<int>(data.size()), &len);
    if (!dec) return "data: URL could not be percent-decoded";
    out->assign(dec, dec + len);
    c->free(dec);
  }
  if (out->size() > cap) return "data: URL decodes to more than the limit of " + std::to_string(cap) + " bytes";
  return std::nullopt;
}

std::string sha256_hex(const void* data, size_t size) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data, size, md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < len; ++i) s += hex[md[i] >> 4], s += hex[md[i] & 15];
  return s;
}

std::string sha256_pin(const std::vector<uint8_t>& bytes) { return "sha256:" + sha256_hex(bytes.data(), bytes.size()); }

namespace {

struct DownloadState {
  std::vector<uint8_t>* out;
  uint64_t cap;
  bool over = false;
  const std::atomic<bool>* cancel = nullptr;
};

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* st = static_cast<DownloadState*>(user);
  return st->cancel && st->cancel->load() ? 1 : 0;  // non-zero aborts the transfer
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* st = static_cast<DownloadState*>(user);
  size_t len = size * n;
  if (st->out->size() + len > st->cap) {
    st->over = true;
    return 0;  // aborts the transfer
  }
  st->out->insert(st->out->end(), data, data + len);
  return len;
}

// Host and port of an http(s) URL, as libcurl parses it (port defaulted by scheme).
bool host_port_of(const std::string& url, std::string* host, std::string* port) {
  const curl::Lib* lc = curl::lib();
  if (!lc) return false;
  CURLU* u = lc->url();
  if (!u) return false;
  bool ok = false;
  if (lc->url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char *h = nullptr, *p = nullptr;
    if (lc->url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
        lc->url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) == CURLUE_OK) {
      *host = h;
      *port = p;
      for (char& c : *host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      ok = true;
    }
    lc->free(h);
    lc->free(p);
  }
  lc->url_cleanup(u);
  return ok;
}

}  // namespace

bool host_allowed(const std::string& url, const std::vector<std::string>& patterns, std::string* why) {
  std::string host, port;
  if (!host_port_of(url, &host, &port)) {
    *why = "cannot parse URL \"" + url + "\"";
    return false;
  }
  for (const std::string& pat : patterns) {
    std::string ph = pat, pp;
    if (auto colon = pat.rfind(':'); colon != std::string::npos) ph = pat.substr(0, colon), pp = pat.substr(colon + 1);
    if (!pp.empty() && pp != port) continue;
    if (ph.rfind("*.", 0) == 0) {
      std::string suffix = ph.substr(1);  // ".example.com": subdomains only
      if (host.size() > suffix.size() && host.compare(host.size() - suffix.size(), suffix.size(), suffix) == 0)
        return true;
    } else if (ph == host) {
      return true;
    }
  }
  *why = "host \"" + host + ":" + port + "\" is not in the policy's fetch.allowed_hosts";
  return false;
}

std::optional<std::string> download(const std::string& url_in, const FetchLimits& limits, std::vector<uint8_t>* out) {
  if (!limits.downloads_allowed) return "downloads (urlDownload) are not allowed by the policy (fetch.url_download)";
  std::string load_error;
  const curl::Lib* lc = curl::lib(&load_error);
  if (!lc) return "download of " + url_in + " impossible: " + load_error;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(limits.timeout_ms));
  std::string url = url_in;
  // Redirects are followed here, one at a time, so that every hop passes the host allowlist.
  for (int hop = 0; hop <= 5; ++hop) {
    std::string why;
    if (!limits.allowed_hosts.empty() && !host_allowed(url, limits.allowed_hosts, &why)) return why;
    long left_ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left_ms <= 0)
      return "download of " + url_in + " did not finish within " + std::to_string(static_cast<long>(limits.timeout_ms)) + " ms";
    std::unique_ptr<CURL, void (*)(CURL*)> c(lc->easy_init(), lc->easy_cleanup);
    if (!c) return "download of " + url_in + " failed: curl_easy_init";
    out->clear();
    DownloadState st{out, limits.max_bytes, false, limits.cancel.get()};
    char errbuf[CURL_ERROR_SIZE] = {};
    lc->easy_setopt(c.get(), CURLOPT_URL, url.c_str());
    lc->easy_setopt(c.get(), CURLOPT_PROTOCOLS_STR, "http,https");
    lc->easy_setopt(c.get(), CURLOPT_FOLLOWLOCATION, 0L);
    lc->easy_setopt(c.get(), CURLOPT_TIMEOUT_MS, left_ms);
    lc->easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT_MS, std::min(left_ms, 30000L));
    lc->easy_setopt(c.get(), CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(limits.max_bytes));
    lc->easy_setopt(c.get(), CURLOPT_FAILONERROR, 1L);
    lc->easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
    lc->easy_setopt(c.get(), CURLOPT_NOPROXY, "*");  // fetch exactly the host that was allowed
    lc->easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, on_body);
    lc->easy_setopt(c.get(), CURLOPT_WRITEDATA, &st);
    lc->easy_setopt(c.get(), CURLOPT_ERRORBUFFER, errbuf);
    lc->easy_setopt(c.get(), CURLOPT_USERAGENT, "wasmjail");
    if (limits.cancel) {
      lc->easy_setopt(c.get(), CURLOPT_XFERINFOFUNCTION, on_progress);
      lc->easy_setopt(c.get(), CURLOPT_XFERINFODATA, &st);
      lc->easy_setopt(c.get(), CURLOPT_NOPROGRESS, 0L);
    }
    CURLcode rc = lc->easy_perform(c.get());
    if (limits.cancel && limits.cancel->load()) return "download of " + url_in + " was cancelled";
    if (st.over || rc == CURLE_FILESIZE_EXCEEDED)
      return "download of " + url_in + " exceeds the limit of " + std::to_string(limits.max_bytes) + " bytes";
    if (rc == CURLE_OPERATION_TIMEDOUT)
      return "download of " + url_in + " did not finish within " + std::to_string(static_cast<long>(limits.timeout_ms)) + " ms";
    if (rc != CURLE_OK)
      return "download of " + url_in + " failed: " + (errbuf[0] ? std::string(errbuf) : lc->easy_strerror(rc));
    long code = 0;
    lc->easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &code);
    if (code >= 300 && code < 400) {
      char* next = nullptr;
      lc->easy_getinfo(c.get(), CURLINFO_REDIRECT_URL, &next);
      if (!next) return "download of " + url_in + " failed: HTTP " + std::to_string(code) + " without a Location";
      url = next;
      continue;
    }
    return std::nullopt;
  }
  return "download of " + url_in + " failed: more than 5 redirects";
}

namespace {

std::string resolve_local(const std::string& base, const std::string& p) {
  fs::path path(p);
  return path.is_absolute() ? p : (fs::path(base) / path).lexically_normal().string();
}

// Bytes of a module or file input from any source, with its pin checked.
std::optional<std::string> fetch_bytes(const StorageSpec& s, const std::string& base, uint64_t cap,
                                       const FetchLimits& fetch, const PrepareOptions& popts, bool is_module,
                                       std::vector<uint8_t>* out, std::string* local_dir, SharedFd* local_dir_fd) {
  std::optional<std::string> err;
  switch (s.source) {
    case StorageSource::kInline: err = decode_data_url(s.url, cap, out); break;
    case StorageSource::kUrlDownload: {
      FetchLimits f = fetch;
      f.max_bytes = std::min<uint64_t>(f.max_bytes, cap);
      err = download(s.url, f, out);
      break;
    }
    case StorageSource::kLocal: {
      // Checked and opened in one step, now: what the path was at submission does not count.
      std::string path = resolve_local(base, s.source_path);
      OpenedSource src;
      if (auto e = open_source(path, popts.local_roots, popts.local_roots_enforced, &src)) return s.field + ": " + *e;
      if (src.is_dir) {
        if (!is_module) {
          *local_dir = path;
          *local_dir_fd = std::make_shared<const UniqueFd>(std::move(src.fd));
          return std::nullopt;
        }
        UniqueFd file;
        std::string name;
        if (auto e = open_single_wasm(src.fd.get(), path, &file, &name)) return s.field + ": " + *e;
        src.fd = std::move(file);
        path += "/" + name;
      }
      err = read_fd_capped(src.fd.get(), path, cap, out, is_module ? "module size limit" : "size limit");
      break;
    }
  }
  if (err) return s.field + ": " + *err;
  // A module must look like one before its bytes reach a compiler whose errors quote them:
  // messages never echo the content of a host file.
  static const uint8_t kWasmHead[8] = {0, 'a', 's', 'm', 1, 0, 0, 0};
  if (is_module && (out->size() < 8 || std::memcmp(out->data(), kWasmHead, 8) != 0))
    return s.field + ": not a WebAssembly binary module (it does not start with \"\\0asm\" and version 1)";
  if (!s.checksum.empty()) {
    std::string got = sha256_pin(*out);
    std::string want = s.checksum;
    for (char& ch : want) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (got != want) return s.field + ": content does not match its pin: expected " + want + ", got " + got;
  }
  return std::nullopt;
}

// The job spec's stdin, within the policy's stdin_bytes.
std::optional<std::string> fetch_stdin(const StdinSpec& st, const std::string& base, const PrepareOptions& opts,
                                       std::string* out) {
  const uint64_t cap = opts.stdin_bytes_max;
  auto over = [&](uint64_t n) {
    const cfg::Location& w = st.where;
    std::string at = w.file.empty() ? "" : w.file + ":" + std::to_string(w.line) + ":" + std::to_string(w.column) + ": ";
    return at + "stdin: " + std::to_string(n) + " bytes exceed the stdin_bytes limit of " + std::to_string(cap) + " bytes";
  };
  if (st.kind == StdinSpec::Kind::kText) {
    if (st.data.size() > cap) return over(st.data.size());
    *out = st.data;
    return std::nullopt;
  }
  StorageSpec src = st.source;
  if (st.kind == StdinSpec::Kind::kBase64) {
    src = StorageSpec{};
    src.source = StorageSource::kInline;
    src.url = "data:application/octet-stream;base64,";
    for (char c : st.data)
      if (c != '\n' && c != '\r' && c != ' ' && c != '\t') src.url += c;
    src.field = "stdin.base64";
  }
  std::vector<uint8_t> bytes;
  std::string local_dir;
  SharedFd local_fd;
  if (auto err = fetch_bytes(src, base, cap, opts.fetch, opts, false, &bytes, &local_dir, &local_fd)) return err;
  if (!local_dir.empty()) return "stdin: " + local_dir + " is a folder; stdin must be a file";
  out->assign(bytes.begin(), bytes.end());
  return std::nullopt;
}

std::optional<std::string> write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return "cannot create " + path + ": " + std::strerror(errno);
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = errno;
      close(fd);
      return "cannot write " + path + ": " + std::strerror(e);
    }
    off += static_cast<size_t>(n);
  }
  close(fd);
  return std::nullopt;
}

std::string make_temp_dir(const char* prefix) {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + prefix + "-XXXXXX";
  return mkdtemp(tmpl.data()) ? tmpl : std::string();
}

}  // namespace

std::optional<std::string> prepare_job(const JobSpec& spec, const PrepareOptions& opts, PreparedJob* out) {
  Job& job = out->job;
  const std::string& base = spec.base_dir;
  std::string dummy;
  SharedFd dummy_fd;

  // Modules.
  std::vector<uint8_t> bytes;
  if (auto err = fetch_bytes(spec.entry_module, base, opts.module_bytes_max, opts.fetch, opts, true, &bytes, &dummy, &dummy_fd))
    return err;
  job.module_bytes = std::move(bytes);
  const StorageSpec& em = spec.entry_module;
  std::string shown = !em.name.empty() ? em.name : !em.source_path.empty() ? em.source_path : "entry_module";
  job.module_path = shown;
  for (const StorageSpec& s : spec.import_modules) {
    ModuleBlob blob;
    if (auto err = fetch_bytes(s, base, opts.module_bytes_max, opts.fetch, opts, true, &blob.bytes, &dummy, &dummy_fd)) return err;
    blob.name = !s.name.empty() ? s.name : s.path;
    if (!s.name.empty() && !s.path.empty()) blob.aliases.push_back(s.path);
    job.libraries.push_back(std::move(blob));
  }
  if (spec.stdin_spec) {
    if (auto err = fetch_stdin(*spec.stdin_spec, base, opts, &job.stdin_data.emplace())) return err;
  }
  job.entry_point = spec.entry_point;
  job.env = spec.env;
  job.argv.push_back(spec.argv0 ? *spec.argv0 : fs::path(shown).filename().string());
  job.argv.insert(job.argv.end(), spec.parameters.begin(), spec.parameters.end());

  // Inputs: folders are mounted as they are; file contents are staged into a private
  // folder per guest directory, which is mounted read-only in their place.
  std::map<std::string, std::string> staged;  // guest dir -> staging folder
  for (const StorageSpec& s : spec.inputs) {
    std::vector<uint8_t> content;
    std::string local_dir;
    SharedFd local_fd;
    if (auto err = fetch_bytes(s, base, UINT64_MAX / 2, opts.fetch, opts, false, &content, &local_dir, &local_fd))
      return err;
    if (!local_dir.empty()) {
      job.dirs.push_back(DirMount{local_dir, s.path, true, local_fd->get()});
      out->dir_fds.push_back(std::move(local_fd));
      continue;
    }
    fs::path guest(s.path);
    std::string gdir = guest.parent_path().string();
    if (!staged.count(gdir)) {
      if (out->staging_dir.empty()) {
        out->staging_dir = make_temp_dir("wasmjail-inputs");
        if (out->staging_dir.empty()) return std::string("cannot create a staging folder: ") + std::strerror(errno);
      }
      std::string dir = out->staging_dir + "/" + std::to_string(staged.size());
      if (mkdir(dir.c_str(), 0755) != 0) return "cannot create " + dir + ": " + std::strerror(errno);
      staged[gdir] = dir;
      job.dirs.push_back(DirMount{dir, gdir, true});
    }
    if (auto err = write_bytes(staged[gdir] + "/" + guest.filename().string(), content)) return s.field + ": " + *err;
  }
  // Two mounts at one guest folder would shadow each other.
  for (size_t i = 0; i < job.dirs.size(); ++i)
    for (size_t k = i + 1; k < job.dirs.size(); ++k)
      if (job.dirs[i].guest_path == job.dirs[k].guest_path)
        return "inputs: two inputs are mounted at " + job.dirs[i].guest_path +
               " (a folder input and a file input inside it cannot be combined)";

  // Outputs: empty writable folders, each made beneath a folder fd and opened without
  // following a symlink, so that nothing planted in their place is mounted into the job.
  if (spec.outputs.empty()) return std::nullopt;
  UniqueFd parent;  // where output folders are made (the job folder, or the local user's DIR)
  std::string parent_path = opts.output_dir;
  mode_t mode = 0755;
  if (opts.output_root) {
    if (auto e = make_dir_beneath(opts.output_root->get(), opts.job_dir_name, 0700, true, &parent))
      return "outputs: job folder " + opts.output_dir + ": " + *e;
    mode = 0700;
  } else if (!opts.output_dir.empty()) {
    std::error_code ec;
    fs::create_directories(opts.output_dir, ec);
    parent = UniqueFd(open(opts.output_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!parent) return "outputs: cannot open output folder " + opts.output_dir + ": " + std::strerror(errno);
  }
  UniqueFd tmp_parent;
  std::string tmp_path;
  for (const StorageSpec& s : spec.outputs) {
    std::string host;
    UniqueFd dir;
    if (parent) {
      host = parent_path + "/" + s.name;
      if (auto e = make_dir_beneath(parent.get(), s.name, mode, opts.output_root != nullptr, &dir))
        return s.field + ": output folder " + host + ": " + *e;
    } else if (!s.source_path.empty()) {
      // A host folder the local user's job file names for this output.
      host = resolve_local(base, s.source_path);
      std::error_code ec;
      fs::create_directories(host, ec);
      dir = UniqueFd(open(host.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!dir) return s.field + ": cannot open output folder " + host + ": " + std::strerror(errno);
    } else {
      if (!tmp_parent) {
        tmp_path = make_temp_dir("wasmjail-outputs");
        if (tmp_path.empty()) return std::string("cannot create an output folder: ") + std::strerror(errno);
        tmp_parent = UniqueFd(open(tmp_path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!tmp_parent) return "cannot open " + tmp_path + ": " + std::strerror(errno);
      }
      host = tmp_path + "/" + s.name;
      if (auto e = make_dir_beneath(tmp_parent.get(), s.name, 0755, true, &dir))
        return s.field + ": output folder " + host + ": " + *e;
    }
    auto shared = std::make_shared<const UniqueFd>(std::move(dir));
    job.dirs.push_back(DirMount{host, s.path, false, shared->get()});
    out->dir_fds.push_back(std::move(shared));
    out->outputs.emplace_back(s.name, host);
  }
  return std::nullopt;
}

void cleanup_staging(PreparedJob& p) {
  p.dir_fds.clear();
  if (p.staging_dir.empty()) return;
  std::error_code ec;
  fs::remove_all(p.staging_dir, ec);
}

}  // namespace wj
