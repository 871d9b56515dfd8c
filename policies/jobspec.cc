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

StorageSpec parse_storage(const YAML::Node& n, const Doc& doc, const std::string& what, bool output = false) {
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
  if (output) {
    // An output's StorageSource says where to publish it (IPFS, S3, ...): the orchestrator's
    // job. The output is written to the local output folder and reported as not published.
    if (src) s.publish_to = cfg::as_string(src, doc, what + ".storage_source");
    return s;
  }
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
    StorageSpec s = parse_storage(v[i], doc, what, outputs);
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
      // Outputs are empty writable folders unless a host folder is named for them. A url
      // is where a published output would end up: ignored with the publishing.
      if (!s.url.empty() && s.publish_to.empty()) doc.fail(v[i], what + ": an output cannot have a url");
      if (!s.publish_to.empty()) s.url.clear();
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

// ---- Bacalhau v1.x jobs ----------------------------------------------------------------
// https://docs.bacalhau.org (models.Job): one batch task whose engine is wasm. Inputs and
// modules are InputSources {Source: {Type, Params}, Alias, Target}.

const std::vector<std::string_view> kV1JobKeys = {"ID", "Name", "Namespace", "Type", "Priority", "Count",
                                                  "Constraints", "Meta", "Labels", "Tasks", "State", "Version",
                                                  "Revision", "CreateTime", "ModifyTime"};
const std::vector<std::string_view> kV1TaskKeys = {"Name", "Engine", "Publisher", "Env", "Meta", "InputSources",
                                                   "ResultPaths", "Resources", "Network", "Timeouts"};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// {Source: {Type, Params}, Alias, Target} -> a StorageSpec with the same meaning as the
// legacy shape: Target is the guest path (or, for a module, its link name), Alias its name.
StorageSpec parse_input_source(const YAML::Node& n, const Doc& doc, const std::string& what) {
  cfg::check_map(n, doc, what, {"Source", "Alias", "Target"});
  YAML::Node src = n["Source"];
  if (!src) doc.fail(n, what + ".Source is missing (Type and Params)");
  cfg::check_map(src, doc, what + ".Source", {"Type", "Params"});
  if (!src["Type"]) doc.fail(src, what + ".Source.Type is missing");
  StorageSpec s;
  s.field = what;
  s.where = doc.at(n);
  std::string type = cfg::as_string(src["Type"], doc, what + ".Source.Type");
  YAML::Node params = src["Params"];
  if (params && !params.IsNull() && !params.IsMap()) doc.fail(params, what + ".Source.Params must be a mapping");
  const std::string k = normalize_source(type);
  std::vector<std::string_view> allowed;
  if (k == "urldownload") {
    s.source = StorageSource::kUrlDownload;
    allowed = {"URL", "Checksum"};
  } else if (k == "localdirectory") {
    s.source = StorageSource::kLocal;
    allowed = {"SourcePath", "ReadWrite"};
  } else if (k == "inline") {
    s.source = StorageSource::kInline;
    allowed = {"URL"};
  } else {
    doc.fail(src["Type"], what + ".Source.Type \"" + type +
                              "\" is not served by this executor (it serves urlDownload, localDirectory and inline)");
  }
  if (params && params.IsMap()) {
    cfg::check_map(params, doc, what + ".Source.Params", allowed);
    if (params["URL"]) s.url = cfg::as_string(params["URL"], doc, what + ".Source.Params.URL");
    if (params["SourcePath"]) s.source_path = cfg::as_string(params["SourcePath"], doc, what + ".Source.Params.SourcePath");
    if (params["ReadWrite"]) s.read_write = cfg::as_bool(params["ReadWrite"], doc, what + ".Source.Params.ReadWrite");
    if (params["Checksum"]) s.checksum = cfg::as_string(params["Checksum"], doc, what + ".Source.Params.Checksum");
  }
  if (n["Alias"]) s.name = cfg::as_string(n["Alias"], doc, what + ".Alias");
  if (n["Target"]) s.path = cfg::as_string(n["Target"], doc, what + ".Target");
  require_content(s, n, doc);
  return s;
}

// Bacalhau's memory quantities: "1Gi", "512Mi", "1gb", "500MB", "1073741824".
uint64_t v1_bytes(const YAML::Node& n, const Doc& doc, const std::string& what) {
  std::string raw = cfg::as_string(n, doc, what), num, unit;
  for (char c : raw) {
    if (c == ' ') continue;
    if (unit.empty() && (std::isdigit(static_cast<unsigned char>(c)) || c == '.')) num += c;
    else unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  static const std::vector<std::pair<std::string, std::string>> kUnits = {
      {"", "B"},     {"b", "B"},     {"k", "KB"},    {"kb", "KB"},   {"m", "MB"},   {"mb", "MB"},   {"g", "GB"},
      {"gb", "GB"},  {"t", "TB"},    {"tb", "TB"},   {"ki", "KiB"},  {"kib", "KiB"}, {"mi", "MiB"}, {"mib", "MiB"},
      {"gi", "GiB"}, {"gib", "GiB"}, {"ti", "TiB"}, {"tib", "TiB"}};
  for (const auto& [u, ours] : kUnits) {
    if (u != unit) continue;
    std::string err;
    if (auto b = cfg::parse_bytes(num + ours, &err)) return *b;
    doc.fail(n, what + ": " + err);
  }
  doc.fail(n, what + ": \"" + raw + "\" is not a memory size (e.g. 512Mi, 1Gi, 1GB)");
}

void parse_v1(const YAML::Node& root, const Doc& doc, JobSpec* job) {
  cfg::check_map(root, doc, "the job", kV1JobKeys);
  if (YAML::Node t = root["Type"]) {
    std::string type = cfg::as_string(t, doc, "Type");
    if (lower(type) != "batch") doc.fail(t, "Type is \"" + type + "\"; this executor runs only \"batch\" jobs (one run to completion)");
  }
  if (YAML::Node c = root["Count"]; c && cfg::as_int(c, doc, "Count", 0, 1 << 30) > 1)
    doc.fail(c, "Count asks for several executions; an executor runs one (the orchestrator fans out)");
  YAML::Node tasks = root["Tasks"];
  if (!tasks || !tasks.IsSequence() || tasks.size() == 0) doc.fail(tasks ? tasks : root, "Tasks must be a list with one task");
  if (tasks.size() > 1) doc.fail(tasks[1], "Tasks has " + std::to_string(tasks.size()) + " tasks; a batch job here has exactly one");
  const YAML::Node task = tasks[0];
  const std::string tw = "Tasks[0]";
  cfg::check_map(task, doc, tw, kV1TaskKeys);
  YAML::Node engine = task["Engine"];
  if (!engine) doc.fail(task, tw + ".Engine is missing; this executor runs Type: wasm");
  cfg::check_map(engine, doc, tw + ".Engine", {"Type", "Params"});
  std::string etype = engine["Type"] ? cfg::as_string(engine["Type"], doc, tw + ".Engine.Type") : "";
  if (lower(etype) != "wasm") doc.fail(engine["Type"] ? engine["Type"] : engine, tw + ".Engine.Type is \"" + etype + "\"; this executor runs only \"wasm\"");
  YAML::Node params = engine["Params"];
  if (!params || !params.IsMap()) doc.fail(engine, tw + ".Engine.Params must hold at least EntryModule");
  const std::string pw = tw + ".Engine.Params";
  cfg::check_map(params, doc, pw, {"EntryModule", "Entrypoint", "EntryPoint", "Parameters", "EnvironmentVariables", "ImportModules"});
  if (!params["EntryModule"]) doc.fail(params, pw + ".EntryModule is missing (an InputSource with the module)");
  job->entry_module = parse_input_source(params["EntryModule"], doc, pw + ".EntryModule");
  job->entry_module.path.clear();  // the entry module is not mounted
  if (params["Entrypoint"] && params["EntryPoint"]) doc.fail(params["EntryPoint"], pw + ": \"Entrypoint\" and \"EntryPoint\" both given; use one");
  if (YAML::Node v = params["Entrypoint"] ? params["Entrypoint"] : params["EntryPoint"]) {
    job->entry_point = cfg::as_string(v, doc, pw + ".Entrypoint");
    if (job->entry_point.empty()) job->entry_point = "_start";  // Bacalhau's default
  }
  if (YAML::Node v = params["Parameters"]; v && !v.IsNull()) {
    job->parameters = cfg::as_string_list(v, doc, pw + ".Parameters");
    for (const auto& p : job->parameters)
      if (p.find('\0') != std::string::npos) doc.fail(v, pw + ".Parameters contain a NUL byte");
  }
  std::set<std::string> seen;
  auto add_env = [&](const YAML::Node& v, const std::string& what) {
    if (!v || v.IsNull()) return;
    if (!v.IsMap()) doc.fail(v, what + " must be a mapping of NAME: value");
    for (auto it = v.begin(); it != v.end(); ++it) {
      std::string key = cfg::as_string(it->first, doc, "an environment variable name");
      std::string val = it->second.IsNull() ? "" : cfg::as_string(it->second, doc, what + "." + key);
      if (auto err = check_env_entry(key, val)) doc.fail(it->first, what + ": " + *err);
      if (!seen.insert(key).second) doc.fail(it->first, what + ": \"" + key + "\" is given twice (Env and EnvironmentVariables together)");
      job->env.emplace_back(key, val);
    }
  };
  add_env(params["EnvironmentVariables"], pw + ".EnvironmentVariables");
  add_env(task["Env"], tw + ".Env");
  if (YAML::Node v = params["ImportModules"]; v && !v.IsNull()) {
    if (!v.IsSequence()) doc.fail(v, pw + ".ImportModules must be a list of InputSources");
    std::set<std::string> names = {"wasi_snapshot_preview1"};
    for (size_t i = 0; i < v.size(); ++i) {
      std::string what = pw + ".ImportModules[" + std::to_string(i) + "]";
      StorageSpec s = parse_input_source(v[i], doc, what);
      if (s.name.empty() && s.path.empty()) doc.fail(v[i], what + " needs an Alias (or a Target): the module name the imports refer to");
      for (const std::string& nm : {s.name, s.path})
        if (!nm.empty() && !names.insert(nm).second) doc.fail(v[i], what + ": module name \"" + nm + "\" is already taken");
      job->import_modules.push_back(std::move(s));
    }
  }
  if (YAML::Node v = task["InputSources"]; v && !v.IsNull()) {
    if (!v.IsSequence()) doc.fail(v, tw + ".InputSources must be a list");
    for (size_t i = 0; i < v.size(); ++i) {
      std::string what = tw + ".InputSources[" + std::to_string(i) + "]";
      StorageSpec s = parse_input_source(v[i], doc, what);
      if (s.path.empty()) doc.fail(v[i], what + " needs a Target: where the guest sees it");
      if (s.read_write) doc.fail(v[i], what + ": inputs are read-only here; use ResultPaths for writable folders");
      check_guest_path(s.path, v[i], doc, what + ".Target");
      s.path = clean_guest_path(s.path);
      for (const auto& o : job->inputs)
        if (o.path == s.path) doc.fail(v[i], what + ": Target \"" + s.path + "\" is used twice");
      job->inputs.push_back(std::move(s));
    }
  }
  std::string publisher;
  if (YAML::Node p = task["Publisher"]; p && !p.IsNull()) {
    cfg::check_map(p, doc, tw + ".Publisher", {"Type", "Params"});
    if (p["Type"]) publisher = cfg::as_string(p["Type"], doc, tw + ".Publisher.Type");
  }
  if (YAML::Node v = task["ResultPaths"]; v && !v.IsNull()) {
    if (!v.IsSequence()) doc.fail(v, tw + ".ResultPaths must be a list of {Name, Path}");
    for (size_t i = 0; i < v.size(); ++i) {
      std::string what = tw + ".ResultPaths[" + std::to_string(i) + "]";
      cfg::check_map(v[i], doc, what, {"Name", "Path"});
      StorageSpec s;
      s.field = what;
      s.where = doc.at(v[i]);
      if (!v[i]["Name"]) doc.fail(v[i], what + " needs a Name");
      if (!v[i]["Path"]) doc.fail(v[i], what + " needs a Path: where the guest writes it");
      s.name = cfg::as_string(v[i]["Name"], doc, what + ".Name");
      s.path = cfg::as_string(v[i]["Path"], doc, what + ".Path");
      check_guest_path(s.path, v[i]["Path"], doc, what + ".Path");
      s.path = clean_guest_path(s.path);
      if (s.name.empty() || s.name.find('/') != std::string::npos || s.name == "." || s.name == "..")
        doc.fail(v[i], what + ".Name must be a plain file name, got \"" + s.name + "\"");
      if (is_reserved_output_name(s.name))
        doc.fail(v[i], what + ".Name \"" + s.name + "\" is reserved for the result files (stdout, stderr, exitCode, result.json)");
      for (const auto& o : job->outputs)
        if (o.name == s.name || o.path == s.path) doc.fail(v[i], what + ": Name or Path is used twice");
      for (const auto& in : job->inputs)
        if (in.path == s.path) doc.fail(v[i], what + ": Path \"" + s.path + "\" is also an input's Target");
      s.read_write = true;
      if (!publisher.empty() && lower(publisher) != "noop" && lower(publisher) != "local") s.publish_to = publisher;
      job->outputs.push_back(std::move(s));
    }
  }
  if (YAML::Node net = task["Network"]; net && !net.IsNull()) {
    cfg::check_map(net, doc, tw + ".Network", {"Type", "Domains"});
    std::string type = net["Type"] ? cfg::as_string(net["Type"], doc, tw + ".Network.Type") : "None";
    if (lower(type) != "none") doc.fail(net, tw + ".Network.Type \"" + type + "\" asks for network access; wasm jobs have none (use None)");
  }
  if (YAML::Node t = task["Timeouts"]; t && !t.IsNull()) {
    cfg::check_map(t, doc, tw + ".Timeouts", {"ExecutionTimeout", "QueueTimeout", "TotalTimeout"});
    if (YAML::Node e = t["ExecutionTimeout"]) {
      int64_t secs = cfg::as_int(e, doc, tw + ".Timeouts.ExecutionTimeout (seconds)", 0, 720 * 3600);
      if (secs > 0) job->limits.wall_time_ms = static_cast<double>(secs) * 1000;
    }
  }
  if (YAML::Node r = task["Resources"]; r && !r.IsNull()) {
    cfg::check_map(r, doc, tw + ".Resources", {"CPU", "Memory", "Disk", "GPU"});
    if (YAML::Node m = r["Memory"]; m && !m.IsNull() && !(m.IsScalar() && m.Scalar().empty())) {
      uint64_t b = v1_bytes(m, doc, tw + ".Resources.Memory");
      if (b == 0) doc.fail(m, tw + ".Resources.Memory must be more than 0");
      job->limits.memory = b;
    }
    if (YAML::Node g = r["GPU"]; g && g.IsScalar() && !g.Scalar().empty() && g.Scalar() != "0")
      doc.fail(g, tw + ".Resources.GPU: wasm jobs get no GPU");
  }
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
    } else if (root["Tasks"] || root["Type"]) {
      parse_v1(root, doc, &job);
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
