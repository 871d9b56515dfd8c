// JobSpec: Bacalhau's JobSpecWasm (entry module, entry point, environment, import modules,
// parameters) plus inputs and outputs, parsed from YAML or JSON and validated.
//
// Keys are accepted in the seed model's snake_case and in Bacalhau's legacy CamelCase JSON
// (EntryModule, StorageSource, SourcePath, ...). A whole legacy Bacalhau job
// ({"Spec": {"Engine": "Wasm", "Wasm": {...}, "inputs": [...], "outputs": [...]}}) is
// accepted too, and so is a Bacalhau v1.x job ({"Type": "batch", "Tasks": [{"Engine":
// {"Type": "wasm", "Params": {...}}, "InputSources": [...], "ResultPaths": [...], ...}]}).
// Unknown keys fail with the closest known key suggested.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "policies/config_util.h"
#include "policies/policy.h"

namespace wj {

enum class StorageSource { kInline, kUrlDownload, kLocal };
const char* to_string(StorageSource s);

struct StorageSpec {
  StorageSource source = StorageSource::kLocal;
  std::string name;
  std::string url;          // inline: a data: URL; urlDownload: http(s) URL
  std::string source_path;  // local: file or directory, relative to the job file's folder
  std::string path;         // where the guest sees it (inputs/outputs), or a module's link name
  std::string checksum;     // optional "sha256:<64 hex>" pin for the fetched bytes
  bool read_write = false;
  // outputs only: where the job asked for them to be published (a legacy output's
  // StorageSource, a v1.x task's Publisher.Type: "IPFS", "s3", ...). Never done here:
  // publishing is the orchestrator's job; the result says the output was not published.
  std::string publish_to;
  std::string field;        // "entry_module", "import_modules[1]", ... for messages
  cfg::Location where;
};

// The job's stdin: literal text, base64 (decoded when the job is prepared; the alphabet is
// checked when parsed), or a StorageSpec source (a file, an inline data: URL, a download).
struct StdinSpec {
  enum class Kind { kText, kBase64, kSource } kind = Kind::kText;
  std::string data;    // kText: the bytes; kBase64: the encoded text
  StorageSpec source;  // kSource
  cfg::Location where;
};

struct JobSpec {
  StorageSpec entry_module;
  std::string entry_point = "_start";
  std::vector<std::pair<std::string, std::string>> env;  // in file order
  std::vector<StorageSpec> import_modules;
  std::vector<std::string> parameters;
  std::optional<std::string> argv0;
  std::vector<StorageSpec> inputs, outputs;
  std::optional<StdinSpec> stdin_spec;  // `stdin` / `Stdin`
  Limits limits;        // what the job asks for (`limits:`, or a legacy job's Spec.Timeout)
  std::string base_dir;  // local source paths resolve relative to this
};

// Parses and validates a job. `file` names it in errors ("<stdin>" for standard input);
// `base_dir` is the folder relative local paths resolve against.
cfg::Expected<JobSpec> parse_job_spec(const std::string& text, const std::string& file,
                                      const std::string& base_dir);

// The same, for a job already parsed as part of a larger document (an API request body);
// locations refer to that document.
cfg::Expected<JobSpec> parse_job_spec_node(const YAML::Node& root, const std::string& file,
                                           const std::string& base_dir);

// Names an output may not take: they are the files of an --output-dir.
bool is_reserved_output_name(const std::string& name);

}  // namespace wj
