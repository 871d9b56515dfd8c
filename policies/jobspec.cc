#include "policies/jobspec.h"

#include <algorithm>
#include <set>

#include "policies/job.h"

namespace wj {
namespace {

using cfg::ConfigError;
using cfg::Doc;

// Each field: snake_case name, then Bacalhau's CamelCase spelling.
struct Key {
  std::string_view snake, camel;
};

// Finds a field given in either spelling; both at once is an error.
YAML::Node field(const YAML::Node& map, const Doc& doc, Key k) {
  YAML::Node a = map[std::string(k.snake)], b = map[std::string(k.camel)];
  if (a && b) doc.fail(b, "\"" + std::string(k.snake) + "\" and \"" + std::string(k.camel) + "\" both given; use one");
  return a ? a : b;
}

std::vector<std::string_view> spellings(std::initializer_list<Key> keys) {
  std::vector<std::string_view> out;
  for (const Key& k : keys) {
    out.push_back(k.snake);
    if (k.camel != k.snake) out.push_back(k.camel);
  }
  return out;
}

std::string normalize_source(const std::string& s) {
  std::string out;
  for (char c : s)
    if (c != '_' && c != '-') out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_http_url(const std::string& u) { return u.rfind("http://", 0) == 0 || u.rfind("https://", 0) == 0; }

// Job-spec strings end up in host paths, mount points, URLs, argv and logs: none may carry
// a NUL or another control character. Parameter and environment values may hold a tab or
// a newline (multi-line arguments), which only the guest sees.
std::string text(const YAML::Node& v, const Doc& doc, const std::string& what, bool allow_tab_newline = false) {
  std::string s = cfg::as_string(v, doc, what);
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != 0x7f) continue;
    if (allow_tab_newline && (c == '\t' || c == '\n')) continue;
    static const char* hex = "0123456789abcdef";
    doc.fail(v, what + " contains a control character (0x" + std::string{hex[c >> 4], hex[c & 15]} + ") at byte " +
                    std::to_string(i) + (c == 0 ? " (a NUL)" : ""));
  }
  return s;
}

const Key kSourceKey{"storage_source", "StorageSource"}, kNameKey{"name", "Name"}, kUrlKey{"url", "URL"},
    kSourcePathKey{"source_path", "SourcePath"}, kPathKey{"path", "Path"}, kReadWriteKey{"read_write", "ReadWrite"},
    kCidKey{"cid", "CID"}, kChecksumKey{"checksum", "Checksum"}, kMetadataKey{"metadata", "Metadata"};

StorageSpec parse_storage(const YAML::Node& n, const Doc& doc, const std::string& what) {
  cfg::check_map(n, doc, what,
                 spellings({kSourceKey, kNameKey, kUrlKey, kSourcePathKey, kPathKey, kReadWriteKey, kCidKey,
                            kChecksumKey, kMetadataKey}));
  StorageSpec s;
  s.field = what;
  s.where = doc.at(n);
  if (auto v = field(n, doc, kNameKey)) s.name = text(v, doc, what + ".name");
  if (auto v = field(n, doc, kUrlKey)) s.url = text(v, doc, what + ".url");
  if (auto v = field(n, doc, kSourcePathKey)) s.source_path = text(v, doc, what + ".source_path");
  if (auto v = field(n, doc, kPathKey)) s.path = text(v, doc, what + ".path");
  if (auto v = field(n, doc, kReadWriteKey)) s.read_write = cfg::as_bool(v, doc, what + ".read_write");
  if (auto v = field(n, doc, kMetadataKey); v && !v.IsMap()) doc.fail(v, what + ".metadata must be a mapping");
  if (auto v = field(n, doc, kChecksumKey)) {
    s.checksum = text(v, doc, what + ".checksum");
    const std::string hex = s.checksum.rfind("sha256:", 0) == 0 ? s.checksum.substr(7) : "";
    if (hex.size() != 64 || !std::all_of(hex.begin(), hex.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); }))
      doc.fail(v, what + ".checksum must be \"sha256:\" followed by 64 hex digits");
  }
  YAML::Node src = field(n, doc, kSourceKey);
  if (auto cid = field(n, doc, kCidKey)) {
    if (!src) doc.fail(cid, what + ": a CID names IPFS content, which this executor does not serve (it serves inline, urlDownload and localDirectory)");
  }
  if (src) {
    std::string raw = text(src, doc, what + ".storage_source");
    std::string k = normalize_source(raw);
    if (k == "inline") s.source = StorageSource::kInline;
    else if (k == "urldownload" || k == "url") s.source = StorageSource::kUrlDownload;
    else if (k == "localdirectory" || k == "local" || k == "localfile") s.source = StorageSource::kLocal;
    else if (k == "ipfs" || k == "s3" || k == "repoclone" || k == "repoclonelfs" || k == "estuary" || k == "filecoin" ||
             k == "filecoinunsealed" || k == "gcs" || k == "http")
      doc.fail(src, what + ": storage source \"" + raw + "\" is not served by this executor (it serves inline, urlDownload and localDirectory)");
    else {
      std::string msg = what + ": unknown storage source \"" + raw + "\"";
      if (auto c = cfg::closest(raw, {"inline", "urlDownload", "localDirectory"})) msg += " (did you mean \"" + *c + "\"?)";
      doc.fail(src, msg);
    }
  } else if (s.url.rfind("data:", 0) == 0) {
    s.source = StorageSource::kInline;
  } else if (is_http_url(s.url)) {
    s.source = StorageSource::kUrlDownload;
  } else if (!s.source_path.empty()) {
    s.source = StorageSource::kLocal;
  } else if (!s.url.empty()) {
    doc.fail(n, what + ": url \"" + s.url + "\" is neither a data: URL nor http(s); set storage_source");
  }
  return s;
}

// A module source must say where its bytes come from.
void require_content(const StorageSpec& s, const YAML::Node& n, const Doc& doc) {
  switch (s.source) {
    case StorageSource::kInline:
      if (s.url.rfind("data:", 0) != 0) doc.fail(n, s.field + ": an inline source needs url: \"data:...\" (RFC 2397)");
      break;
    case StorageSource::kUrlDownload:
      if (!is_http_url(s.url)) doc.fail(n, s.field + ": urlDownload needs an http:// or https:// url");
      break;
    case StorageSource::kLocal:
      if (s.source_path.empty()) doc.fail(n, s.field + ": a local source needs source_path");
      if (s.source_path.find('\0') != std::string::npos) doc.fail(n, s.field + ".source_path contains a NUL byte");
      break;
  }
}

// Guest paths are absolute and clean: "/inputs", "/outputs/a".
void check_guest_path(const std::string& p, const YAML::Node& n, const Doc& doc, const std::string& what) {
  if (p.empty() || p[0] != '/') doc.fail(n, what + " must be an absolute guest path such as /inputs, got \"" + p + "\"");
  if (p.find('\0') != std::string::npos) doc.fail(n, what + " contains a NUL byte");
  size_t i = 0;
  while (i < p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    std::string comp = p.substr(i, j - i);
    if (comp == "." || comp == "..") doc.fail(n, what + " must not contain \".\" or \"..\" components: \"" + p + "\"");
    i = j + 1;
  }
}

std::string clean_guest_path(std::string p) {
  std::string out;
  for (char c : p)
    if (!(c == '/' && !out.empty() && out.back() == '/')) out += c;
  if (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

const Key kEntryModule{"entry_module", "EntryModule"}, kEntryPoint{"entry_point", "EntryPoint"},
    kEnv{"environment_variables", "EnvironmentVariables"}, kImports{"import_modules", "ImportModules"},
    kParams{"parameters", "Parameters"}, kArgv0{"argv0", "Argv0"}, kInputs{"inputs", "Inputs"},
    kOutputs{"outputs", "Outputs"}, kLimits{"limits", "Limits"}, kStdin{"stdin", "Stdin"};

bool is_base64(const std::string& s) {
  size_t n = 0, pad = 0;
  for (char c : s) {
    if (c == '\n' || c == '\r' || c == ' ' || c == '\t') continue;
    if (c == '=') {
      ++pad;
    } else if (pad || !(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/')) {
      return false;  // a character outside the alphabet, or data after padding
    }
    ++n;
  }
  return n % 4 == 0 && pad <= 2;
}

// `stdin: TEXT`, `stdin: {text: TEXT}`, `stdin: {base64: B64}`, or `stdin: STORAGE_SPEC`.
StdinSpec parse_stdin(const YAML::Node& v, const Doc& doc) {
  StdinSpec st;
  st.where = doc.at(v);
  if (v.IsScalar()) {
    st.data = v.Scalar();
    return st;
  }
  if (!v.IsMap())
    doc.fail(v, "stdin must be text, {text: ...}, {base64: ...} or a storage spec (inline, localDirectory, urlDownload)");
  YAML::Node text = v["text"], b64 = v["base64"];
  if (text || b64) {
    if (v.size() != 1) doc.fail(v, "stdin: give exactly one of text, base64 or a storage spec");
    if (text) {
      st.data = cfg::as_string(text, doc, "stdin.text");
    } else {
      st.kind = StdinSpec::Kind::kBase64;
      st.data = cfg::as_string(b64, doc, "stdin.base64");
      if (!is_base64(st.data)) doc.fail(b64, "stdin.base64 is not valid base64 (RFC 4648 alphabet, padded to 4)");
    }
    return st;
  }
  st.kind = StdinSpec::Kind::kSource;
  st.source = parse_storage(v, doc, "stdin");
  require_content(st.source, v, doc);
  if (!st.source.path.empty()) doc.fail(v, "stdin: a path has no meaning for stdin (it is fd 0, not a file)");
  return st;
}

void parse_wasm_fields(const YAML::Node& w, const Doc& doc, JobSpec* job) {
  YAML::Node em = field(w, doc, kEntryModule);
  if (!em) doc.fail(w, "missing entry_module (where the module comes from)");
  job->entry_module = parse_storage(em, doc, "entry_module");
  require_content(job->entry_module, em, doc);
  if (auto v = field(w, doc, kEntryPoint)) {
    job->entry_point = text(v, doc, "entry_point");
    if (job->entry_point.empty()) doc.fail(v, "entry_point must not be empty");
  }
  if (auto v = field(w, doc, kEnv)) {
    if (v.IsNull()) {
    } else if (!v.IsMap()) {
      doc.fail(v, "environment_variables must be a mapping of NAME: value");
    } else {
      std::set<std::string> seen;
      for (auto it = v.begin(); it != v.end(); ++it) {
        std::string key = text(it->first, doc, "environment_variables: a name");
        std::string val = it->second.IsNull() ? "" : text(it->second, doc, "environment_variables." + key, true);
        if (auto err = check_env_entry(key, val)) doc.fail(it->first, "environment_variables: " + *err);
        if (!seen.insert(key).second) doc.fail(it->first, "environment_variables: \"" + key + "\" is given twice");
        job->env.emplace_back(key, val);
      }
    }
  }
  if (auto v = field(w, doc, kParams); v && !v.IsNull()) {
    if (!v.IsSequence()) doc.fail(v, "parameters must be a list");
    for (size_t i = 0; i < v.size(); ++i)
      job->parameters.push_back(text(v[i], doc, "parameters[" + std::to_string(i) + "]", true));
  }
  if (auto v = field(w, doc, kArgv0)) job->argv0 = text(v, doc, "argv0");
  if (auto v = field(w, doc, kImports); v && !v.IsNull()) {
    if (!v.IsSequence()) doc.fail(v, "import_modules must be a list of storage specs");
    std::set<std::string> names = {"wasi_snapshot_preview1"};
    for (size_t i = 0; i < v.size(); ++i) {
      std::string what = "import_modules[" + std::to_string(i) + "]";
      StorageSpec s = parse_storage(v[i], doc, what);
      require_content(s, v[i], doc);
      if (s.name.empty() && s.path.empty())
        doc.fail(v[i], what + " needs a name (or a path) that the entry module's imports refer to");
      for (const std::string& n : {s.name, s.path}) {
        if (n.empty()) continue;
        if (!names.insert(n).second)
          doc.fail(v[i], what + ": module name \"" + n + "\" is already taken" +
                             (n == "wasi_snapshot_preview1" ? " by WASI" : " by an earlier module"));
      }
      job->import_modules.push_back(std::move(s));
    }
  }
}

void parse_mounts(const YAML::Node& v, const Doc& doc, bool outputs, JobSpec* job) {
  if (!v || v.IsNull()) return;
  const std::string list = outputs ? "outputs" : "inputs";
  if (!v.IsSequence()) doc.fail(v, list + " must be a list of storage specs");
  for (size_t i = 0; i < v.size(); ++i) {
    std::string what = list + "[" + std::to_string(i) + "]";
    StorageSpec s = parse_storage(v[i], doc, what);
    if (s.path.empty()) doc.fail(v[i], what + " needs a path: where the guest sees it");
    check_guest_path(s.path, v[i], doc, what + ".path");
    s.path = clean_guest_path(s.path);
    if (outputs) {
      if (s.name.empty()) doc.fail(v[i], what + " needs a name");
      if (s.name.find('/') != std::string::npos || s.name == "." || s.name == "..")
        doc.fail(v[i], what + ".name must be a plain file name, got \"" + s.name + "\"");
      if (is_reserved_output_name(s.name))
        doc.fail(v[i], what + ".name \"" + s.name + "\" is reserved for the result files (stdout, stderr, exitCode, result.json)");
      for (const auto& o : job->outputs) {
        if (o.name == s.name) doc.fail(v[i], what + ": output name \"" + s.name + "\" is used twice");
        if (o.path == s.path) doc.fail(v[i], what + ": output path \"" + s.path + "\" is used twice");
      }
      for (const auto& in : job->inputs)
        if (in.path == s.path) doc.fail(v[i], what + ": output path \"" + s.path + "\" is also an input path");
      // Outputs are empty writable folders unless a host folder is named for them.
      if (!s.url.empty()) doc.fail(v[i], what + ": an output cannot have a url");
    } else {
      if (s.read_write) doc.fail(v[i], what + ": inputs are read-only; declare a writable folder under outputs");
      require_content(s, v[i], doc);
      for (const auto& o : job->inputs)
        if (o.path == s.path) doc.fail(v[i], what + ": input path \"" + s.path + "\" is used twice");
    }
    (outputs ? job->outputs : job->inputs).push_back(std::move(s));
  }
}

const std::vector<std::string_view> kLegacyEnvelopeKeys = {"APIVersion", "Metadata", "Spec", "ID", "ClientID", "Status"};
const std::vector<std::string_view> kLegacySpecKeys = {
    "Engine",     "Wasm",       "inputs",  "outputs",     "Inputs",        "Outputs",    "Timeout",
    "Network",    "Resources",  "Verifier", "Publisher",  "PublisherSpec", "Annotations", "NodeSelectors",
    "Sharding",   "ExecutionPlan", "Deal", "DoNotTrack", "Docker",        "Language"};

void parse_legacy(const YAML::Node& root, const Doc& doc, JobSpec* job) {
  cfg::check_map(root, doc, "the job", kLegacyEnvelopeKeys);
  YAML::Node spec = root["Spec"];
  cfg::check_map(spec, doc, "Spec", kLegacySpecKeys);
  YAML::Node engine = spec["Engine"];
  if (!engine) doc.fail(spec, "Spec.Engine is missing; this executor runs \"Wasm\" jobs");
  std::string e = engine.IsScalar() ? engine.Scalar() : "";
  if (normalize_source(e) != "wasm") doc.fail(engine, "Spec.Engine is \"" + e + "\"; this executor runs only \"Wasm\" jobs");
  if (YAML::Node net = spec["Network"]) {
    YAML::Node type = net.IsMap() ? net["Type"] : YAML::Node();
    if (type && !(type.IsScalar() && normalize_source(type.Scalar()) == "none"))
      doc.fail(type, "Spec.Network asks for network access; wasm jobs have none (use Type: None)");
  }
  if (YAML::Node t = spec["Timeout"]) {
    double secs = 0;
    try {
      secs = t.as<double>();
    } catch (const YAML::Exception&) {
      doc.fail(t, "Spec.Timeout must be a number of seconds");
    }
    if (secs < 0) doc.fail(t, "Spec.Timeout must not be negative");
    if (secs > 0) job->limits.wall_time_ms = secs * 1000;
  }
  YAML::Node wasm = spec["Wasm"];
  if (!wasm) doc.fail(spec, "Spec.Wasm is missing");
  cfg::check_map(wasm, doc, "Spec.Wasm", spellings({kEntryModule, kEntryPoint, kEnv, kImports, kParams, kArgv0}));
  parse_wasm_fields(wasm, doc, job);
  YAML::Node in = spec["inputs"] ? spec["inputs"] : spec["Inputs"];
  YAML::Node out = spec["outputs"] ? spec["outputs"] : spec["Outputs"];
  parse_mounts(in, doc, false, job);
  parse_mounts(out, doc, true, job);
}

}  // namespace

const char* to_string(StorageSource s) {
  switch (s) {
    case StorageSource::kInline: return "inline";
    case StorageSource::kUrlDownload: return "urlDownload";
    case StorageSource::kLocal: return "localDirectory";
  }
  return "unknown";
}

bool is_reserved_output_name(const std::string& name) {
  return name == "stdout" || name == "stderr" || name == "exitCode" || name == "result.json";
}

cfg::Expected<JobSpec> parse_job_spec(const std::string& text, const std::string& file, const std::string& base_dir) {
  try {
    return parse_job_spec_node(cfg::parse_text(text, Doc{file}), file, base_dir);
  } catch (const ConfigError& e) {
    return e.error;
  }
}

cfg::Expected<JobSpec> parse_job_spec_node(const YAML::Node& root, const std::string& file,
                                           const std::string& base_dir) {
  Doc doc{file};
  try {
    if (!root.IsMap()) doc.fail(root, "a job must be a mapping with at least entry_module");
    JobSpec job;
    job.base_dir = base_dir;
    if (root["Spec"]) {
      parse_legacy(root, doc, &job);
    } else {
      cfg::check_map(root, doc, "the job",
                     spellings({kEntryModule, kEntryPoint, kEnv, kImports, kParams, kArgv0, kInputs, kOutputs, kLimits,
                                kStdin}));
      parse_wasm_fields(root, doc, &job);
      if (YAML::Node v = field(root, doc, kStdin); v && !v.IsNull()) job.stdin_spec = parse_stdin(v, doc);
      // The job's own limits: the policy's rules and units; only less than the policy allows.
      if (YAML::Node l = field(root, doc, kLimits); l && !l.IsNull()) job.limits = parse_limits(l, doc);
      parse_mounts(field(root, doc, kInputs), doc, false, &job);
      parse_mounts(field(root, doc, kOutputs), doc, true, &job);
    }
    return job;
  } catch (const ConfigError& e) {
    return e.error;
  } catch (const YAML::Exception& e) {
    return cfg::Error{cfg::Location{file, e.mark.line + 1, e.mark.column + 1}, e.msg};
  }
}

}  // namespace wj
