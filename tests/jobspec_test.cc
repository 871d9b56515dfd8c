// The job spec parser: every field, both spellings, and every error class with its location.
#include <boost/test/unit_test.hpp>

#include "policies/jobspec.h"

using namespace wj;

namespace {
JobSpec ok(const std::string& text) {
  auto r = parse_job_spec(text, "job.yaml", "/base");
  BOOST_REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().str()));
  return r.value();
}
std::string err(const std::string& text) {
  auto r = parse_job_spec(text, "job.yaml", "/base");
  BOOST_REQUIRE_MESSAGE(!r.ok(), "expected an error for: " + text);
  return r.error().str();
}
}  // namespace

BOOST_AUTO_TEST_CASE(snake_case_fields) {
  JobSpec j = ok(
      "entry_module: {source_path: m.wasm}\n"
      "entry_point: run\n"
      "environment_variables: {A: '1', B: two}\n"
      "parameters: [x, 'y z']\n"
      "argv0: prog\n"
      "import_modules: [{name: lib, source_path: lib.wasm, path: /modules/lib.wasm}]\n"
      "inputs: [{source_path: in, path: /inputs/}]\n"
      "outputs: [{name: out, path: /outputs}]\n");
  BOOST_TEST(j.entry_module.source_path == "m.wasm");
  BOOST_TEST(std::string(to_string(j.entry_module.source)) == "localDirectory");
  BOOST_TEST(j.entry_point == "run");
  BOOST_TEST(j.env.size() == 2u);
  BOOST_TEST(j.env[1].second == "two");
  BOOST_TEST(j.parameters == (std::vector<std::string>{"x", "y z"}));
  BOOST_TEST(*j.argv0 == "prog");
  BOOST_TEST(j.import_modules[0].name == "lib");
  BOOST_TEST(j.import_modules[0].path == "/modules/lib.wasm");
  BOOST_TEST(j.inputs[0].path == "/inputs");  // trailing slash cleaned
  BOOST_TEST(j.outputs[0].name == "out");
  BOOST_TEST(j.base_dir == "/base");
}

BOOST_AUTO_TEST_CASE(camel_case_fields_and_defaults) {
  JobSpec j = ok(R"({"EntryModule": {"StorageSource": "URLDownload", "URL": "http://127.0.0.1:1/m.wasm",
                     "Checksum": "sha256:)" + std::string(64, 'a') + R"("},
                     "EnvironmentVariables": {"K": "v"}, "Parameters": ["p"],
                     "ImportModules": [{"StorageSource": "Inline", "Name": "lib", "URL": "data:;base64,AGFzbQEAAAA="}]})");
  BOOST_TEST(j.entry_point == "_start");
  BOOST_TEST(std::string(to_string(j.entry_module.source)) == "urlDownload");
  BOOST_TEST(std::string(to_string(j.import_modules[0].source)) == "inline");
}

BOOST_AUTO_TEST_CASE(legacy_bacalhau_job) {
  JobSpec j = ok(R"({"APIVersion": "V1beta1", "Spec": {"Engine": "Wasm", "Timeout": 30,
    "Wasm": {"EntryModule": {"StorageSource": "LocalDirectory", "SourcePath": "m.wasm"}, "EntryPoint": "_start"},
    "inputs": [{"StorageSource": "LocalDirectory", "SourcePath": "d", "Path": "/inputs"}]}})");
  BOOST_TEST(j.entry_module.source_path == "m.wasm");
  BOOST_TEST(*j.limits.wall_time_ms == 30000.0);
  BOOST_TEST(j.inputs.size() == 1u);
  BOOST_TEST(err(R"({"Spec": {"Engine": "Docker", "Wasm": {}}})") ==
             "job.yaml:1:21: Spec.Engine is \"Docker\"; this executor runs only \"Wasm\" jobs");
  BOOST_TEST(err(R"({"Spec": {"Engine": "Wasm", "Network": {"Type": "Full"}, "Wasm": {"EntryModule": {"SourcePath": "m"}}}})")
                 .find("Spec.Network asks for network access") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(syntax_errors_have_line_and_column) {
  BOOST_TEST(err("entry_module: {source_path: m.wasm\n").rfind("job.yaml:2:1: syntax error", 0) == 0);
  BOOST_TEST(err("{\"entry_module\": {\"source_path\": \"m\"},\n  \"parameters\": [1,}").rfind("job.yaml:2:", 0) == 0);
}

BOOST_AUTO_TEST_CASE(unknown_keys_suggest_the_closest) {
  BOOST_TEST(err("entry_module: {source_path: m}\nentry_piont: x\n") ==
             "job.yaml:2:1: unknown key \"entry_piont\" in the job (did you mean \"entry_point\"?)");
  BOOST_TEST(err("entry_module: {sourcepath: m}\n") ==
             "job.yaml:1:16: unknown key \"sourcepath\" in entry_module (did you mean \"source_path\"?)");
  BOOST_TEST(err("entry_module: {source_path: m}\nEntryPoint: a\nentry_point: b\n") ==
             "job.yaml:2:13: \"entry_point\" and \"EntryPoint\" both given; use one");
}

BOOST_AUTO_TEST_CASE(wrong_types) {
  BOOST_TEST(err("entry_module: m.wasm\n") == "job.yaml:1:15: entry_module must be a mapping");
  BOOST_TEST(err("entry_module: {source_path: m}\nparameters: x\n") == "job.yaml:2:13: parameters must be a list");
  BOOST_TEST(err("entry_module: {source_path: m}\nparameters: [[1]]\n") ==
             "job.yaml:2:14: parameters[0] must be a string");
  BOOST_TEST(err("entry_module: {source_path: m}\nenvironment_variables: [A]\n") ==
             "job.yaml:2:24: environment_variables must be a mapping of NAME: value");
  BOOST_TEST(err("entry_module: {source_path: m}\noutputs: [{name: o, path: /o, read_write: maybe}]\n") ==
             "job.yaml:2:43: outputs[0].read_write must be true or false");
}

BOOST_AUTO_TEST_CASE(environment_rules) {
  BOOST_TEST(err("entry_module: {source_path: m}\nenvironment_variables: {'': x}\n") ==
             "job.yaml:2:25: environment_variables: environment variable with an empty name");
  BOOST_TEST(err("entry_module: {source_path: m}\nenvironment_variables: {'A=B': x}\n") ==
             "job.yaml:2:25: environment_variables: environment variable name \"A=B\" contains '='");
  BOOST_TEST(err("{\"entry_module\": {\"source_path\": \"m\"}, \"environment_variables\": {\"A\": \"x\\u0000y\"}}")
                 .find("environment_variables.A contains a control character (0x00) at byte 1 (a NUL)") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(sources) {
  BOOST_TEST(err("entry_module: {storage_source: ipfs, cid: Qm}\n") ==
             "job.yaml:1:32: entry_module: storage source \"ipfs\" is not served by this executor (it serves inline, "
             "urlDownload and localDirectory)");
  BOOST_TEST(err("entry_module: {storage_source: S3}\n").find("storage source \"S3\" is not served") != std::string::npos);
  BOOST_TEST(err("entry_module: {storage_source: inlne, url: 'data:,x'}\n") ==
             "job.yaml:1:32: entry_module: unknown storage source \"inlne\" (did you mean \"inline\"?)");
  BOOST_TEST(err("entry_module: {storage_source: inline, url: 'http://x'}\n") ==
             "job.yaml:1:15: entry_module: an inline source needs url: \"data:...\" (RFC 2397)");
  BOOST_TEST(err("entry_module: {storage_source: urlDownload, url: 'ftp://x/m.wasm'}\n") ==
             "job.yaml:1:15: entry_module: urlDownload needs an http:// or https:// url");
  BOOST_TEST(err("entry_module: {name: m}\n") == "job.yaml:1:15: entry_module: a local source needs source_path");
  BOOST_TEST(err("entry_module: {source_path: m, checksum: 'md5:abc'}\n") ==
             "job.yaml:1:42: entry_module.checksum must be \"sha256:\" followed by 64 hex digits");
  BOOST_TEST(err("entry_module: {cid: Qm123}\n").find("IPFS content, which this executor does not serve") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(module_names) {
  BOOST_TEST(err("entry_module: {source_path: m}\nimport_modules: [{source_path: l}]\n") ==
             "job.yaml:2:18: import_modules[0] needs a name (or a path) that the entry module's imports refer to");
  BOOST_TEST(err("entry_module: {source_path: m}\nimport_modules: [{name: a, source_path: l}, {name: a, source_path: k}]\n") ==
             "job.yaml:2:45: import_modules[1]: module name \"a\" is already taken by an earlier module");
  BOOST_TEST(err("entry_module: {source_path: m}\nimport_modules: [{name: wasi_snapshot_preview1, source_path: l}]\n") ==
             "job.yaml:2:18: import_modules[0]: module name \"wasi_snapshot_preview1\" is already taken by WASI");
}

BOOST_AUTO_TEST_CASE(mounts) {
  BOOST_TEST(err("entry_module: {source_path: m}\ninputs: [{source_path: d}]\n") ==
             "job.yaml:2:10: inputs[0] needs a path: where the guest sees it");
  BOOST_TEST(err("entry_module: {source_path: m}\ninputs: [{source_path: d, path: rel}]\n") ==
             "job.yaml:2:10: inputs[0].path must be an absolute guest path such as /inputs, got \"rel\"");
  BOOST_TEST(err("entry_module: {source_path: m}\ninputs: [{source_path: d, path: /a/../b}]\n") ==
             "job.yaml:2:10: inputs[0].path must not contain \".\" or \"..\" components: \"/a/../b\"");
  BOOST_TEST(err("entry_module: {source_path: m}\ninputs: [{source_path: d, path: /in, read_write: true}]\n") ==
             "job.yaml:2:10: inputs[0]: inputs are read-only; declare a writable folder under outputs");
  BOOST_TEST(err("entry_module: {source_path: m}\ninputs: [{source_path: d, path: /data}]\noutputs: [{name: o, path: /data}]\n") ==
             "job.yaml:3:11: outputs[0]: output path \"/data\" is also an input path");
  BOOST_TEST(err("entry_module: {source_path: m}\noutputs: [{name: stdout, path: /o}]\n") ==
             "job.yaml:2:11: outputs[0].name \"stdout\" is reserved for the result files (stdout, stderr, exitCode, result.json)");
  BOOST_TEST(err("entry_module: {source_path: m}\noutputs: [{name: a, path: /o}, {name: a, path: /p}]\n") ==
             "job.yaml:2:32: outputs[1]: output name \"a\" is used twice");
  BOOST_TEST(err("entry_module: {source_path: m}\noutputs: [{path: /o}]\n") == "job.yaml:2:11: outputs[0] needs a name");
}

BOOST_AUTO_TEST_CASE(missing_and_empty) {
  BOOST_TEST(err("entry_point: x\n") == "job.yaml:1:1: missing entry_module (where the module comes from)");
  BOOST_TEST(err("[1, 2]\n") == "job.yaml:1:1: a job must be a mapping with at least entry_module");
  BOOST_TEST(err("entry_module: {source_path: m}\nentry_point: ''\n") == "job.yaml:2:14: entry_point must not be empty");
}

BOOST_AUTO_TEST_CASE(job_limits_use_the_policy_rules) {
  JobSpec j = ok("entry_module: {source_path: m}\nlimits: {wall_time: 2s, memory: 128MiB}\n");
  BOOST_TEST(*j.limits.wall_time_ms == 2000.0);
  BOOST_TEST(*j.limits.memory == 128ull << 20);
  BOOST_TEST(err("entry_module: {source_path: m}\nlimits: {wall_time: 2 parsecs}\n").rfind("job.yaml:2:21:", 0) == 0);
  BOOST_TEST(err("entry_module: {source_path: m}\nlimits: {wal_time: 2s}\n").find("did you mean \"wall_time\"") !=
             std::string::npos);
}
