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

// ---- Bacalhau v1.x jobs and legacy outputs --------------------------------------------

BOOST_AUTO_TEST_CASE(bacalhau_v1_job_is_mapped) {
  JobSpec j = ok(R"({"Name": "x", "Type": "batch", "Count": 1, "Tasks": [{"Name": "main",
    "Engine": {"Type": "wasm", "Params": {
      "EntryModule": {"Source": {"Type": "localDirectory", "Params": {"SourcePath": "m.wasm"}}, "Target": "/app"},
      "Entrypoint": "run", "Parameters": ["a", "b"], "EnvironmentVariables": {"A": "1"},
      "ImportModules": [{"Source": {"Type": "inline", "Params": {"URL": "data:,x"}}, "Alias": "lib"},
                        {"Source": {"Type": "urlDownload", "Params": {"URL": "https://example.com/l.wasm"}}, "Target": "lib2"}]}},
    "Env": {"B": "2"},
    "InputSources": [{"Source": {"Type": "localDirectory", "Params": {"SourcePath": "d", "ReadWrite": false}}, "Target": "/inputs/"}],
    "ResultPaths": [{"Name": "out", "Path": "/outputs"}],
    "Publisher": {"Type": "ipfs"},
    "Timeouts": {"ExecutionTimeout": 30},
    "Resources": {"CPU": "500m", "Memory": "256Mi"}}]})");
  BOOST_TEST(j.entry_module.source_path == "m.wasm");
  BOOST_TEST(j.entry_module.path == "");  // the entry module is not mounted
  BOOST_TEST(j.entry_point == "run");
  BOOST_TEST(j.parameters == (std::vector<std::string>{"a", "b"}), boost::test_tools::per_element());
  BOOST_REQUIRE(j.env.size() == 2u);
  BOOST_TEST((j.env[0] == std::pair<std::string, std::string>{"A", "1"}));
  BOOST_TEST((j.env[1] == std::pair<std::string, std::string>{"B", "2"}));
  BOOST_REQUIRE(j.import_modules.size() == 2u);
  BOOST_TEST((j.import_modules[0].source == StorageSource::kInline && j.import_modules[0].name == "lib"));
  BOOST_TEST((j.import_modules[1].source == StorageSource::kUrlDownload && j.import_modules[1].path == "lib2"));
  BOOST_REQUIRE(j.inputs.size() == 1u);
  BOOST_TEST(j.inputs[0].path == "/inputs");
  BOOST_TEST(j.inputs[0].source_path == "d");
  BOOST_REQUIRE(j.outputs.size() == 1u);
  BOOST_TEST(j.outputs[0].name == "out");
  BOOST_TEST(j.outputs[0].path == "/outputs");
  BOOST_TEST(j.outputs[0].publish_to == "ipfs");
  BOOST_TEST(*j.limits.wall_time_ms == 30000.0);
  BOOST_TEST(*j.limits.memory == 256ull << 20);
  // EntryPoint (Bacalhau's JSON tag) is accepted too; memory units as Bacalhau writes them.
  JobSpec k = ok(R"({"Type": "batch", "Tasks": [{"Engine": {"Type": "WASM", "Params": {"EntryPoint": "go",
    "EntryModule": {"Source": {"Type": "inline", "Params": {"URL": "data:,x"}}}}}, "Resources": {"Memory": "1gb"}}]})");
  BOOST_TEST(k.entry_point == "go");
  BOOST_TEST(*k.limits.memory == 1000000000ull);
  BOOST_TEST(k.outputs.empty());
}

BOOST_AUTO_TEST_CASE(bacalhau_v1_errors_name_what_and_where) {
  const std::string em = R"("EntryModule": {"Source": {"Type": "inline", "Params": {"URL": "data:,x"}}})";
  BOOST_TEST(err(R"({"Type": "batch", "Tasks": [{"Engine": {"Type": "wasm", "Params": {"EntryModule":
    {"Source": {"Type": "s3", "Params": {"Bucket": "b"}}}}}}]})") ==
             "job.yaml:2:25: Tasks[0].Engine.Params.EntryModule.Source.Type \"s3\" is not served by this executor "
             "(it serves urlDownload, localDirectory and inline)");
  BOOST_TEST(err(R"({"Type": "batch", "Tasks": [{"Engine": {"Type": "wasm", "Params": {)" + em + R"(}},
    "InputSources": [{"Source": {"Type": "ipfs", "Params": {"CID": "Qm"}}, "Target": "/in"}]}]})")
                 .find("Tasks[0].InputSources[0].Source.Type \"ipfs\" is not served by this executor") != std::string::npos);
  BOOST_TEST(err(R"({"Type": "service", "Tasks": []})") ==
             "job.yaml:1:10: Type is \"service\"; this executor runs only \"batch\" jobs (one run to completion)");
  BOOST_TEST(err(R"({"Type": "batch", "Tasks": [{"Engine": {"Type": "docker", "Params": {}}}]})") ==
             "job.yaml:1:49: Tasks[0].Engine.Type is \"docker\"; this executor runs only \"wasm\"");
  BOOST_TEST(err(R"({"Type": "batch", "Tasks": [{"Engine": {"Type": "wasm", "Params": {)" + em + R"(}},
    "Resources": {"Memory": "lots"}}]})")
                 .find("Tasks[0].Resources.Memory: \"lots\" is not a memory size") != std::string::npos);
  BOOST_TEST(err(R"({"Type": "batch", "Tasks": [{"Engine": {"Type": "wasm", "Params": {)" + em + R"(}},
    "Env": {"A": "1"}, "Timeouts": {"ExecutionTimeot": 3}}]})")
                 .find("did you mean \"ExecutionTimeout\"") != std::string::npos);
  BOOST_TEST(err(R"({"Type": "batch", "Tasks": [{"Engine": {"Type": "wasm", "Params": {)" + em + R"(}},
    "Network": {"Type": "Full"}}]})")
                 .find("asks for network access") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(legacy_outputs_with_any_storage_source_are_accepted) {
  JobSpec j = ok(R"({"APIVersion": "V1beta1", "Spec": {"Engine": "Wasm",
    "Wasm": {"EntryModule": {"StorageSource": "LocalDirectory", "SourcePath": "m.wasm"}},
    "outputs": [{"StorageSource": "IPFS", "Name": "outputs", "Path": "/outputs"},
                {"StorageSource": "S3", "Name": "more", "Path": "/more", "URL": "s3://bucket/key"}]}})");
  BOOST_REQUIRE(j.outputs.size() == 2u);
  BOOST_TEST(j.outputs[0].publish_to == "IPFS");
  BOOST_TEST(j.outputs[1].publish_to == "S3");
  BOOST_TEST(j.outputs[1].url == "");
}
