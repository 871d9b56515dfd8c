// End-to-end: `wasmjail exec` with every source, linking error and error class.
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/testlib.h"

namespace fs = std::filesystem;
using nlohmann::json;
using wjt::binary;
using wjt::guest;

namespace {

struct Exec {
  int code;
  json result;
  std::string err;
};

// Writes `job` as job.yaml in a fresh folder and runs `wasmjail exec` on it.
Exec exec_job(const std::string& job, std::vector<std::string> extra = {}, std::string dir = "") {
  if (dir.empty()) dir = wjt::temp_dir();
  wjt::write_file(dir + "/job.yaml", job);
  std::vector<std::string> argv = {binary(), "exec", dir + "/job.yaml"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto r = wjt::run(argv);
  Exec e{r.exit_code, json::parse(r.out, nullptr, false), r.err};
  BOOST_REQUIRE_MESSAGE(!e.result.is_discarded(), "stdout is not JSON: " + r.out);
  return e;
}

std::string G(const std::string& name) { return "'" + guest(name) + "'"; }

std::string base64_of_file(const std::string& path) {
  auto r = wjt::run({"/usr/bin/base64", "-w0", path});
  return r.out;
}

// The loopback HTTP server of tests/http_fixture.py, serving `root`.
struct HttpServer {
  pid_t pid = -1;
  int to_child = -1, from_child = -1;
  int port = 0;
  explicit HttpServer(const std::string& root) {
    int in[2], out[2];
    BOOST_REQUIRE(pipe(in) == 0 && pipe(out) == 0);
    pid = fork();
    if (pid == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      close(in[1]);
      close(out[0]);
      execl("/usr/bin/python3", "python3", WJ_SOURCE_DIR "/tests/http_fixture.py", root.c_str(), nullptr);
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_child = in[1];
    from_child = out[0];  // kept open: closing it early would kill the server with EPIPE
    std::string line;
    char c;
    while (line.size() < 16 && read(from_child, &c, 1) == 1 && c != '\n') line += c;
    port = std::atoi(line.c_str());
    BOOST_REQUIRE(port > 0);
  }
  ~HttpServer() {
    close(to_child);  // the fixture exits when its stdin closes
    close(from_child);
    int st;
    waitpid(pid, &st, 0);
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port) + path; }
};

}  // namespace

BOOST_AUTO_TEST_CASE(examples_give_their_documented_results) {
  auto r = wjt::run({binary(), "exec", WJ_SOURCE_DIR "/configs/examples/hello.yaml"});
  BOOST_TEST(r.exit_code == 0);
  json j = json::parse(r.out);
  BOOST_TEST(j["status"] == "ok");
  BOOST_TEST(j["stdout"] == "Hello, world!\nHello, wasmjail!\n");
  r = wjt::run({binary(), "exec", WJ_SOURCE_DIR "/configs/examples/args-env.yaml"});
  j = json::parse(r.out);
  BOOST_TEST(j["stdout"] == "arg[0]=printenv\narg[1]=--verbose\narg[2]=two words\nenv:GREETING=hello\nenv:MODE=batch\n");
  r = wjt::run({binary(), "exec", WJ_SOURCE_DIR "/configs/examples/dynamic-linking.json"});
  j = json::parse(r.out);
  BOOST_TEST(j["status"] == "ok");
  BOOST_TEST(j["stdout"] == "library ready\nThe library says 42 (and 40 + 2 = 42)\n");
  std::string out = wjt::temp_dir();
  r = wjt::run({binary(), "exec", WJ_SOURCE_DIR "/configs/examples/bacalhau-v1.yaml", "--output-dir", out});
  j = json::parse(r.out);
  BOOST_TEST(j["status"] == "ok");
  BOOST_TEST(j["stdout"] == "3 rows, total 20\n");
  BOOST_TEST(j["publishing"]["published"] == false);
  BOOST_TEST(wjt::read_file(out + "/totals/totals.csv") == "apples,6\npears,10\nplums,24\nTOTAL,20\n");
  fs::remove_all(out);
}

BOOST_AUTO_TEST_CASE(result_shape_is_complete) {
  auto e = exec_job("entry_module: {source_path: " + G("exit_code") + "}\nparameters: ['3']\n");
  BOOST_TEST(e.code == 0);  // the job ran: status ok, the guest's code is in exit_code
  const json& j = e.result;
  BOOST_TEST(j["status"] == "ok");
  BOOST_TEST(j["exit_code"] == 3);
  BOOST_TEST(j["stdout"] == "exiting with 3\n");
  for (const char* k : {"error", "stderr", "stdout_truncated", "stderr_truncated", "timing_ms", "usage"})
    BOOST_TEST(j.contains(k), k);
  for (const char* k : {"total", "queue", "startup", "compile", "run"}) BOOST_TEST(j["timing_ms"].contains(k), k);
  BOOST_TEST(j["usage"]["peak_rss_bytes"].get<uint64_t>() > 0u);
  BOOST_TEST(j["usage"]["peak_wasm_memory_bytes"].get<uint64_t>() >= 65536u);
}

BOOST_AUTO_TEST_CASE(trap_result) {
  auto e = exec_job("entry_module: {source_path: " + G("trap") + "}\n");
  BOOST_TEST(e.code == 1);
  BOOST_TEST(e.result["status"] == "trap");
  BOOST_TEST(e.result["trap"]["message"] == "RuntimeError: unreachable");
  BOOST_TEST(e.result["trap"]["backtrace"][0].get<std::string>().rfind("inner_fails (wasm-function[1]:", 0) == 0);
}

BOOST_AUTO_TEST_CASE(bacalhau_format_and_output_dir) {
  std::string out = wjt::temp_dir() + "/results";
  auto e = exec_job("entry_module: {source_path: " + G("hello") + "}\nparameters: [x]\n",
                    {"--format", "bacalhau", "--output-dir", out});
  BOOST_TEST(e.code == 0);
  BOOST_TEST(e.result == json::parse(R"({"Stdout": "Hello, x!\n", "StdoutTruncated": false, "stderr": "",
                                        "StderrTruncated": false, "ExitCode": 0, "ErrorMsg": ""})"));
  BOOST_TEST(wjt::read_file(out + "/stdout") == "Hello, x!\n");
  BOOST_TEST(wjt::read_file(out + "/stderr") == "");
  BOOST_TEST(wjt::read_file(out + "/exitCode") == "0");
  BOOST_TEST(json::parse(wjt::read_file(out + "/result.json"))["status"] == "ok");
}

BOOST_AUTO_TEST_CASE(entry_point_checks_list_function_exports) {
  auto e = exec_job("entry_module: {source_path: " + G("returns") + "}\nentry_point: nope\n");
  BOOST_TEST(e.code == 1);
  BOOST_TEST(e.result["status"] == "invalid_job");
  BOOST_TEST(e.result["exit_code"] == -1);
  BOOST_TEST(e.result["error"].get<std::string>().find(
                 "entry point \"nope\" is not exported; function exports: _start, other, takes_param") != std::string::npos);
  e = exec_job("entry_module: {source_path: " + G("returns") + "}\nentry_point: memory\n");
  BOOST_TEST(e.result["error"].get<std::string>().find("entry point \"memory\" is a memory, not a function") !=
             std::string::npos);
  e = exec_job("entry_module: {source_path: " + G("returns") + "}\nentry_point: other\n");
  BOOST_TEST(e.result["stdout"] == "invoked\n");
}

BOOST_AUTO_TEST_CASE(inline_sources_base64_and_percent) {
  std::string b64 = base64_of_file(guest("hello"));
  auto e = exec_job("entry_module: {storage_source: inline, url: 'data:application/wasm;base64," + b64 + "'}\n");
  BOOST_TEST(e.result["status"] == "ok");
  BOOST_TEST(e.result["stdout"] == "Hello from wasmjail!\n");
  // Percent-encoded: the 8-byte empty module, then it has no _start.
  e = exec_job("entry_module: {url: 'data:,%00asm%01%00%00%00'}\n");
  BOOST_TEST(e.result["error"].get<std::string>().find("entry point \"_start\" is not exported; function exports: (none)") !=
             std::string::npos);
  e = exec_job("entry_module: {url: 'data:;base64,@@@@'}\n");
  BOOST_TEST(e.result["status"] == "invalid_job");
  BOOST_TEST(e.result["error"] == "entry_module: data: URL has invalid base64");
  e = exec_job("entry_module: {url: 'data:no-comma'}\n");
  BOOST_TEST(e.result["error"] == "entry_module: data: URL has no ',' before its data");
}

BOOST_AUTO_TEST_CASE(local_sources) {
  std::string dir = wjt::temp_dir();
  fs::create_directories(dir + "/one");
  fs::copy_file(guest("hello"), dir + "/one/only.wasm");
  auto e = exec_job("entry_module: {source_path: one}\n", {}, dir);  // relative to the job file
  BOOST_TEST(e.result["status"] == "ok");
  fs::create_directories(dir + "/two");
  fs::copy_file(guest("hello"), dir + "/two/a.wasm");
  fs::copy_file(guest("hello"), dir + "/two/b.wasm");
  e = exec_job("entry_module: {source_path: two}\n", {}, dir);
  BOOST_TEST(e.result["error"] == "entry_module: folder " + dir + "/two holds 2 .wasm files; it must hold exactly one (or name the file)");
  e = exec_job("entry_module: {source_path: missing.wasm}\n", {}, dir);
  BOOST_TEST(e.result["error"] == "entry_module: cannot read " + dir + "/missing.wasm: No such file or directory");
  wjt::write_file(dir + "/text.wasm", "hello there");
  e = exec_job("entry_module: {source_path: text.wasm}\n", {}, dir);
  BOOST_TEST(e.result["status"] == "invalid_job");
  // The message says what is wrong without quoting the file's bytes.
  BOOST_TEST(e.result["error"] == "entry_module: not a WebAssembly binary module (it does not start with \"\\0asm\" and version 1)");
  e = exec_job("entry_module: {source_path: " + G("invalid") + "}\n");
  BOOST_TEST(e.result["error"].get<std::string>().find("invalid module: Compiling function #0 failed") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(checksum_pins) {
  std::string sum = wjt::run({"/usr/bin/sha256sum", guest("hello")}).out.substr(0, 64);
  auto e = exec_job("entry_module: {source_path: " + G("hello") + ", checksum: 'sha256:" + sum + "'}\n");
  BOOST_TEST(e.result["status"] == "ok");
  std::string wrong(64, '0');
  e = exec_job("entry_module: {source_path: " + G("hello") + ", checksum: 'sha256:" + wrong + "'}\n");
  BOOST_TEST(e.result["error"] == "entry_module: content does not match its pin: expected sha256:" + wrong + ", got sha256:" + sum);
}

BOOST_AUTO_TEST_CASE(url_downloads_over_loopback) {
  std::string root = wjt::temp_dir();
  fs::copy_file(guest("hello"), root + "/hello.wasm");
  wjt::write_file(root + "/big.wasm", std::string(3u << 20, 'x'));
  HttpServer srv(root);
  const std::vector<std::string> policy = {"--policy", WJ_SOURCE_DIR "/tests/policies/fetch_loopback.yaml"};
  auto e = exec_job("entry_module: {storage_source: urlDownload, url: '" + srv.url("/hello.wasm") + "'}\n", policy);
  BOOST_TEST(e.result["status"] == "ok", e.result["error"]);
  BOOST_TEST(e.result["stdout"] == "Hello from wasmjail!\n");
  // Redirects are followed, each hop checked against the allowlist.
  e = exec_job("entry_module: {url: '" + srv.url("/redirect/hello.wasm") + "'}\n", policy);
  BOOST_TEST(e.result["status"] == "ok", e.result["error"]);
  e = exec_job("entry_module: {url: '" + srv.url("/nothing.wasm") + "'}\n", policy);
  BOOST_TEST(e.result["error"].get<std::string>().find("entry_module: download of " + srv.url("/nothing.wasm") +
                                                       " failed: The requested URL returned error: 404") == 0);
  std::string sum = wjt::run({"/usr/bin/sha256sum", guest("hello")}).out.substr(0, 64);
  e = exec_job("entry_module: {url: '" + srv.url("/hello.wasm") + "', checksum: 'sha256:" + std::string(64, 'f') + "'}\n", policy);
  BOOST_TEST(e.result["error"].get<std::string>().find("content does not match its pin") != std::string::npos);
  e = exec_job("entry_module: {url: '" + srv.url("/hello.wasm") + "', checksum: 'sha256:" + sum + "'}\n", policy);
  BOOST_TEST(e.result["status"] == "ok");
  // Size and time limits from the policy's fetch section.
  e = exec_job("entry_module: {url: '" + srv.url("/big.wasm") + "'}\n", policy);
  BOOST_TEST(e.result["error"] == "entry_module: download of " + srv.url("/big.wasm") + " exceeds the limit of 2097152 bytes");
  e = exec_job("entry_module: {url: '" + srv.url("/hang") + "'}\n", policy);
  BOOST_TEST(e.result["error"] == "entry_module: download of " + srv.url("/hang") + " did not finish within 2000 ms");
  // A host outside the allowlist, and the default policy, which allows no downloads.
  std::string other = "http://localhost:" + std::to_string(srv.port) + "/hello.wasm";
  e = exec_job("entry_module: {url: '" + other + "'}\n", policy);
  BOOST_TEST(e.result["error"] == "entry_module: host \"localhost:" + std::to_string(srv.port) +
                                      "\" is not in the policy's fetch.allowed_hosts");
  e = exec_job("entry_module: {url: '" + srv.url("/hello.wasm") + "'}\n");
  BOOST_TEST(e.result["error"] == "entry_module: downloads (urlDownload) are not allowed by the policy (fetch.url_download)");
}

BOOST_AUTO_TEST_CASE(job_limits_within_the_policy) {
  auto e = exec_job("entry_module: {source_path: " + G("loop") + "}\nlimits: {wall_time: 1s}\n");
  BOOST_TEST(e.result["status"] == "timeout");
  BOOST_TEST(e.result["error"] == "wall-time limit of 1s exceeded");
  e = exec_job("entry_module: {source_path: " + G("hello") + "}\nlimits: {memory: 64GiB}\n");
  BOOST_TEST(e.result["status"] == "invalid_job");
  BOOST_TEST(e.result["error"] == "job asks for limits.memory 64GiB but the policy allows at most 2GiB");
  // A legacy Bacalhau job's Spec.Timeout is a wall-time ask.
  std::string dir = wjt::temp_dir();
  wjt::write_file(dir + "/legacy.json", R"({"Spec": {"Engine": "Wasm", "Timeout": 1, "Wasm": {"EntryModule":
      {"StorageSource": "LocalDirectory", "SourcePath": ")" + guest("loop") + R"("}}}})");
  auto r = wjt::run({binary(), "exec", dir + "/legacy.json"});
  BOOST_TEST(json::parse(r.out)["status"] == "timeout");
  r = wjt::run({binary(), "exec", dir + "/legacy.json", "--policy", "no-such-policy"});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(json::parse(r.out)["error"].get<std::string>().find("no-such-policy") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(linking_errors_name_module_field_and_types) {
  std::string lib = "{name: lib, source_path: " + G("linklib") + "}";
  auto e = exec_job("entry_module: {source_path: " + G("linkmain") + "}\n");
  BOOST_TEST(e.result["status"] == "invalid_job");
  BOOST_TEST(e.result["error"].get<std::string>().find(
                 "import lib.say_ready (func () -> nil): no module named \"lib\" is linked (linked: wasi_snapshot_preview1)") !=
             std::string::npos);
  // Registered under its path too.
  e = exec_job("entry_module: {source_path: " + G("linkmain") + "}\nimport_modules: [{path: lib, source_path: " +
               G("linklib") + "}]\n");
  BOOST_TEST(e.result["status"] == "ok");
  // The library lacks an export the entry wants / has it with another type.
  e = exec_job("entry_module: {source_path: " + G("linkmain") + "}\nimport_modules: [{name: lib, source_path: " +
               G("returns") + "}]\n");
  BOOST_TEST(e.result["error"].get<std::string>().find(
                 "import lib.say_ready (func () -> nil): module \"lib\" has no export named \"say_ready\" (its exports: memory, "
                 "_start, other, takes_param)") != std::string::npos);
  e = exec_job("entry_module: {source_path: " + G("link_badtype") + "}\nimport_modules: [" + lib + "]\n");
  BOOST_TEST(e.result["error"].get<std::string>().find(
                 "import lib.answer (func (i64) -> (i64)): type mismatch: expected func (i64) -> (i64), found func () -> (i32)") !=
             std::string::npos);
  e = exec_job("entry_module: {source_path: " + G("link_badtype") + "}\nimport_modules: [{name: lib, source_path: " +
               G("linklib") + "}]\nentry_point: nothing\n");
  BOOST_TEST(e.result["status"] == "invalid_job");
  // A library that is not valid wasm is named as such.
  e = exec_job("entry_module: {source_path: " + G("linkmain") + "}\nimport_modules: [{name: lib, source_path: " +
               G("invalid") + "}]\n");
  BOOST_TEST(e.result["error"].get<std::string>().find("library module \"lib\": Compiling function #0 failed") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_job_files) {
  auto e = exec_job("entry_module: {source_path: x.wasm\n");
  BOOST_TEST(e.code == 1);
  BOOST_TEST(e.result["status"] == "invalid_job");
  BOOST_TEST(e.result["error"].get<std::string>().find("job.yaml:2:1: syntax error") != std::string::npos);
  e = exec_job("entry_modul: {source_path: x.wasm}\n");
  BOOST_TEST(e.result["error"].get<std::string>().find("unknown key \"entry_modul\" in the job (did you mean \"entry_module\"?)") !=
             std::string::npos);
  std::string dir = wjt::temp_dir();
  wjt::write_file(dir + "/huge.yaml", std::string(17u << 20, '#'));
  auto r = wjt::run({binary(), "exec", dir + "/huge.yaml"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(json::parse(r.out)["error"].get<std::string>().find("over the job file size limit of 16777216 bytes") != std::string::npos);
  r = wjt::run({binary(), "exec", dir + "/none.yaml"});
  BOOST_TEST(json::parse(r.out)["error"] == "cannot read " + dir + "/none.yaml: No such file or directory");
}

BOOST_AUTO_TEST_CASE(usage_errors_print_json_and_exit_2) {
  auto r = wjt::run({binary(), "exec"});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(json::parse(r.out)["error"] == "missing JOB_FILE");
  r = wjt::run({binary(), "exec", "x.yaml", "--format", "xml"});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(json::parse(r.out)["status"] == "invalid_job");
}

BOOST_AUTO_TEST_CASE(inputs_and_outputs_are_mounted) {
  // args_env only prints, but mounting must succeed and outputs must be created.
  std::string dir = wjt::temp_dir();
  fs::create_directories(dir + "/in");
  std::string outdir = wjt::temp_dir() + "/res";
  auto e = exec_job("entry_module: {source_path: " + G("hello") +
                        "}\ninputs: [{source_path: in, path: /inputs}, {url: 'data:,hi', path: /cfg/x.txt}]\n"
                        "outputs: [{name: result, path: /outputs}]\n",
                    {"--output-dir", outdir}, dir);
  BOOST_TEST(e.result["status"] == "ok");
  BOOST_TEST(fs::is_directory(outdir + "/result"));
  BOOST_TEST(e.result["outputs"]["result"] == outdir + "/result");
  e = exec_job("entry_module: {source_path: " + G("hello") + "}\ninputs: [{source_path: nowhere, path: /inputs}]\n", {}, dir);
  BOOST_TEST(e.result["error"] == "inputs[0]: cannot read " + dir + "/nowhere: No such file or directory");
}

BOOST_AUTO_TEST_CASE(proc_exit_status_outside_0_255_is_not_minus_one) {
  std::string dir = wjt::temp_dir(), out = dir + "/results";
  auto e = exec_job("entry_module: {source_path: " + G("exit_code") + "}\nparameters: ['-1']\n", {"--output-dir", out}, dir);
  BOOST_TEST(e.code == 0);
  BOOST_TEST(e.result["status"] == "ok");
  BOOST_TEST(e.result["exit_code"] == 4294967295ll);  // WASI's u32 status, never -1
  BOOST_TEST(wjt::read_file(out + "/exitCode") == "4294967295");
  e = exec_job("entry_module: {source_path: " + G("exit_code") + "}\nparameters: ['300']\n", {"--format", "bacalhau"}, dir);
  BOOST_TEST(e.result["ExitCode"] == 300);
  auto r = wjt::run({binary(), "run", guest("exit_code"), "-1"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.err.find("status 4294967295 (outside 0..255)") != std::string::npos);
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(legacy_job_with_ipfs_outputs_runs_and_says_not_published) {
  std::string dir = wjt::temp_dir();
  fs::create_directories(dir + "/data");
  wjt::write_file(dir + "/data/data.csv", "apples,6\npears,10\n");
  std::string out = dir + "/res";
  auto e = exec_job(R"({"APIVersion": "V1beta1", "Spec": {"Engine": "Wasm",
    "Wasm": {"EntryModule": {"StorageSource": "LocalDirectory", "SourcePath": )" + json(guest("csv_transform")).dump() + R"(},
             "Parameters": ["/inputs/data.csv", "/outputs/totals.csv"]},
    "inputs": [{"StorageSource": "LocalDirectory", "SourcePath": "data", "Path": "/inputs"}],
    "outputs": [{"StorageSource": "IPFS", "Name": "outputs", "Path": "/outputs"}]}})",
                    {"--output-dir", out}, dir);
  BOOST_TEST(e.code == 0);
  BOOST_TEST(e.result["status"] == "ok");
  BOOST_TEST(wjt::read_file(out + "/outputs/totals.csv").find("TOTAL,16") != std::string::npos);
  BOOST_TEST(e.result["publishing"]["published"] == false);
  BOOST_TEST(e.result["publishing"]["requested"]["outputs"] == "IPFS");
  BOOST_TEST(e.result["publishing"]["reason"].get<std::string>().find("not publish") != std::string::npos);
  BOOST_TEST(wjt::read_file(out + "/stdout") == "2 rows, total 16\n");
  BOOST_TEST(wjt::read_file(out + "/exitCode") == "0");
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(bacalhau_v1_job_runs_end_to_end) {
  std::string dir = wjt::temp_dir();
  fs::create_directories(dir + "/data");
  wjt::write_file(dir + "/data/data.csv", "plums,24\n");
  std::string out = dir + "/res";
  std::string b64 = base64_of_file(guest("csv_transform"));
  auto e = exec_job(R"({"Name": "v1", "Type": "batch", "Count": 1, "Tasks": [{"Name": "t",
    "Engine": {"Type": "wasm", "Params": {
      "EntryModule": {"Source": {"Type": "inline", "Params": {"URL": "data:application/wasm;base64,)" + b64 + R"("}}},
      "Entrypoint": "_start", "Parameters": ["/inputs/data.csv", "/outputs/totals.csv"]}},
    "InputSources": [{"Source": {"Type": "localDirectory", "Params": {"SourcePath": "data"}}, "Target": "/inputs"}],
    "ResultPaths": [{"Name": "totals", "Path": "/outputs"}],
    "Publisher": {"Type": "s3"},
    "Timeouts": {"ExecutionTimeout": 60}, "Resources": {"Memory": "512Mi"}}]})",
                    {"--output-dir", out, "--format", "bacalhau"}, dir);
  BOOST_TEST(e.code == 0);
  BOOST_TEST(e.result["Stdout"] == "1 rows, total 24\n");
  BOOST_TEST(e.result["ExitCode"] == 0);
  BOOST_TEST(wjt::read_file(out + "/totals/totals.csv").find("plums,48\nTOTAL,24") != std::string::npos);
  BOOST_TEST(wjt::read_file(out + "/stdout") == "1 rows, total 24\n");
  BOOST_TEST(wjt::read_file(out + "/stderr") == "");
  BOOST_TEST(wjt::read_file(out + "/exitCode") == "0");
  json full = json::parse(wjt::read_file(out + "/result.json"));
  BOOST_TEST(full["publishing"]["requested"]["totals"] == "s3");
  // A job asking for more memory than the policy allows fails naming the limit.
  e = exec_job(R"({"Type": "batch", "Tasks": [{"Engine": {"Type": "wasm", "Params": {
      "EntryModule": {"Source": {"Type": "inline", "Params": {"URL": "data:application/wasm;base64,)" + b64 + R"("}}}}},
    "Resources": {"Memory": "64Gi"}}]})", {}, dir);
  BOOST_TEST(e.result["status"] == "invalid_job");
  BOOST_TEST(e.result["error"].get<std::string>().find("memory") != std::string::npos);
  fs::remove_all(dir);
}

// ---- issue 15: the host side -----------------------------------------------------------

// An output named "\0" used to make the --output-dir itself the guest's mount. Now: refused,
// naming the field, and nothing is written outside.
BOOST_AUTO_TEST_CASE(a_nul_output_name_is_invalid_job) {
  std::string out = wjt::temp_dir();
  auto e = exec_job("{\"entry_module\": {\"source_path\": " + G("hello") +
                        "}, \"outputs\": [{\"name\": \"\\u0000\", \"path\": \"/out\"}]}",
                    {"--output-dir", out});
  BOOST_TEST(e.result["status"] == "invalid_job");
  BOOST_TEST(e.result["error"].get<std::string>().find(
                 "outputs[0].name contains a control character (0x00) at byte 0 (a NUL)") != std::string::npos);
}

// Result files are created anew beneath the folder's fd: a symlink planted in their place
// (by a guest whose output shares the folder, or anyone) is replaced, never followed.
BOOST_AUTO_TEST_CASE(result_files_never_follow_a_symlink) {
  std::string out = wjt::temp_dir(), outside = wjt::temp_dir();
  wjt::write_file(outside + "/victim", "host file\n");
  BOOST_REQUIRE(symlink((outside + "/victim").c_str(), (out + "/stdout").c_str()) == 0);
  BOOST_REQUIRE(symlink((outside + "/victim").c_str(), (out + "/result.json").c_str()) == 0);
  auto e = exec_job("entry_module: {source_path: " + G("hello") + "}\nparameters: [x]\n", {"--output-dir", out});
  BOOST_TEST(e.result["status"] == "ok");
  BOOST_TEST(wjt::read_file(outside + "/victim") == "host file\n");
  BOOST_TEST(!fs::is_symlink(out + "/stdout"));
  BOOST_TEST(wjt::read_file(out + "/stdout") == "Hello, x!\n");
  BOOST_TEST(json::parse(wjt::read_file(out + "/result.json"))["status"] == "ok");
}

// An output folder that is a symlink is not followed into (nothing planted gets mounted).
BOOST_AUTO_TEST_CASE(an_output_folder_that_is_a_symlink_is_refused) {
  std::string out = wjt::temp_dir(), outside = wjt::temp_dir();
  BOOST_REQUIRE(symlink(outside.c_str(), (out + "/data").c_str()) == 0);
  auto e = exec_job("entry_module: {source_path: " + G("hello") + "}\noutputs: [{name: data, path: /data}]\n",
                    {"--output-dir", out});
  BOOST_TEST(e.result["status"] == "invalid_job");
  BOOST_TEST(e.result["error"] == "outputs[0]: output folder " + out + "/data: folder data is a symlink; it was not followed");
  BOOST_TEST(fs::is_empty(outside));
}

// A FIFO (or a device) named as a source is refused at once: exec does not hang on it.
BOOST_AUTO_TEST_CASE(a_fifo_source_does_not_hang_exec) {
  std::string dir = wjt::temp_dir();
  BOOST_REQUIRE(mkfifo((dir + "/m.wasm").c_str(), 0600) == 0);
  auto t0 = std::chrono::steady_clock::now();
  auto e = exec_job("entry_module: {source_path: m.wasm}\n", {}, dir);
  BOOST_TEST(e.result["status"] == "invalid_job");
  BOOST_TEST(e.result["error"] == "entry_module: " + dir + "/m.wasm is a FIFO; only regular files and folders can be sources");
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < std::chrono::seconds(30)));
  e = exec_job("entry_module: {source_path: /dev/zero}\n");
  BOOST_TEST(e.result["error"] == "entry_module: /dev/zero is a character device; only regular files and folders can be sources");
  // A folder source whose single .wasm is a FIFO: refused the same way.
  fs::create_directories(dir + "/f");
  BOOST_REQUIRE(mkfifo((dir + "/f/x.wasm").c_str(), 0600) == 0);
  e = exec_job("entry_module: {source_path: f}\n", {}, dir);
  BOOST_TEST(e.result["error"] == "entry_module: " + dir + "/f/x.wasm is a FIFO, not a regular file");
  // The job file itself.
  auto r = wjt::run({binary(), "exec", dir + "/m.wasm"});
  BOOST_TEST(json::parse(r.out)["error"] == "cannot read " + dir + "/m.wasm: it is a FIFO, not a regular file");
}
