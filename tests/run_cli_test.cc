// End-to-end: `wasmjail run` through supervisor -> forked child -> V8 -> pipes -> result.
#include <boost/test/unit_test.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "tests/testlib.h"

using wjt::binary;
using wjt::guest;
using wjt::run;

BOOST_AUTO_TEST_CASE(hello_prints_and_exits_zero) {
  auto r = run({binary(), "run", guest("hello"), "a", "b"});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "Hello, a!\nHello, b!\n");
  BOOST_TEST(r.err == "");
}

BOOST_AUTO_TEST_CASE(argv_is_module_name_then_args) {
  auto r = run({binary(), "run", guest("args_env"), "one", "two words", ""});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "arg[0]=" + guest("args_env") + "\narg[1]=one\narg[2]=two words\narg[3]=\n");
}

BOOST_AUTO_TEST_CASE(argv0_can_be_overridden) {
  auto r = run({binary(), "run", "--argv0", "prog", guest("args_env"), "x"});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "arg[0]=prog\narg[1]=x\n");
}

BOOST_AUTO_TEST_CASE(environment_is_exactly_what_was_passed) {
  // The host's environment (including this secret) must not reach the guest.
  auto r = run({binary(), "run", "--env", "A=1", "--env", "B=two=2", "--env", "EMPTY=", "--argv0", "p",
                guest("args_env")},
               {"WASMJAIL_TEST_SECRET=leaked"});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "arg[0]=p\nenv:A=1\nenv:B=two=2\nenv:EMPTY=\n");
}

BOOST_AUTO_TEST_CASE(no_env_means_empty_environment) {
  auto r = run({binary(), "run", "--argv0", "p", guest("args_env")});
  BOOST_TEST(r.out == "arg[0]=p\n");
}

BOOST_AUTO_TEST_CASE(bad_env_is_a_usage_error) {
  auto r = run({binary(), "run", "--env", "=x", guest("args_env")});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err.find("empty name") != std::string::npos);
  r = run({binary(), "run", "--env", "NOEQUALS", guest("args_env")});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err.find("KEY=VALUE") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(exit_codes_pass_through) {
  for (int code : {0, 3, 255}) {
    auto r = run({binary(), "run", guest("exit_code"), std::to_string(code)});
    BOOST_TEST(r.exit_code == code);
    BOOST_TEST(r.out == "exiting with " + std::to_string(code) + "\n");
  }
}

BOOST_AUTO_TEST_CASE(entry_point_that_returns_is_exit_zero) {
  auto r = run({binary(), "run", guest("returns")});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "");
}

BOOST_AUTO_TEST_CASE(invoke_calls_another_export) {
  auto r = run({binary(), "run", "--invoke", "other", guest("returns")});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "invoked\n");
}

BOOST_AUTO_TEST_CASE(invoke_of_missing_or_parameterized_export_lists_exports) {
  auto r = run({binary(), "run", "--invoke", "nope", guest("returns")});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err.find("entry point \"nope\" is not exported") != std::string::npos);
  BOOST_TEST(r.err.find("function exports: _start, other, takes_param") != std::string::npos);
  r = run({binary(), "run", "--invoke", "takes_param", guest("returns")});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err.find("entry point \"takes_param\" has type (i32) -> nil; it must take no parameters and return nothing") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(trap_prints_message_and_named_backtrace) {
  auto r = run({binary(), "run", guest("trap")});
  BOOST_TEST(r.exit_code == 134);
  BOOST_TEST(r.err.find("wasm trap: RuntimeError: unreachable") != std::string::npos);
  // Innermost first, with names from the name section.
  auto inner = r.err.find("at inner_fails (wasm-function[1]:");
  auto outer = r.err.find("at outer_calls (wasm-function[2]:");
  BOOST_TEST(inner != std::string::npos);
  BOOST_TEST(outer != std::string::npos);
  BOOST_TEST(inner < outer);
}

BOOST_AUTO_TEST_CASE(missing_file_is_a_one_line_error) {
  auto r = run({binary(), "run", "/nonexistent/x.wasm"});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err == "wasmjail: error: cannot read /nonexistent/x.wasm: No such file or directory\n");
}

BOOST_AUTO_TEST_CASE(non_wasm_file_names_file_and_reason) {
  auto dir = wjt::temp_dir();
  wjt::write_file(dir + "/notwasm.wasm", "#!/bin/sh\necho hi\n");
  auto r = run({binary(), "run", dir + "/notwasm.wasm"});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err.rfind("wasmjail: error: " + dir + "/notwasm.wasm: invalid module: expected magic word", 0) == 0);
  BOOST_TEST(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}

BOOST_AUTO_TEST_CASE(invalid_module_gives_v8_validation_reason) {
  auto r = run({binary(), "run", guest("invalid")});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err.find(guest("invalid") + ": invalid module: Compiling function #0") != std::string::npos);
  BOOST_TEST(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}

BOOST_AUTO_TEST_CASE(missing_import_names_module_and_field) {
  auto r = run({binary(), "run", guest("missing_import")});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err.find("import env.mystery (func () -> nil): no module named \"env\" is linked (linked: wasi_snapshot_preview1)") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(usage_errors_exit_2) {
  BOOST_TEST(run({binary(), "run"}).exit_code == 2);
  BOOST_TEST(run({binary(), "run", "--bogus", guest("hello")}).exit_code == 2);
  BOOST_TEST(run({binary(), "frobnicate"}).exit_code == 2);
}

BOOST_AUTO_TEST_CASE(output_streams_before_the_job_ends) {
  int fd = -1;
  pid_t pid = wjt::spawn({binary(), "run", guest("sleep_lines")}, &fd);
  std::string got;
  char buf[256];
  while (got.find('\n') == std::string::npos) {
    ssize_t n = read(fd, buf, sizeof buf);
    BOOST_REQUIRE(n > 0);
    got.append(buf, static_cast<size_t>(n));
  }
  BOOST_TEST(got == "first\n");
  // The guest is still sleeping: the first line arrived while the job was running.
  int status = 0;
  BOOST_TEST(waitpid(pid, &status, WNOHANG) == 0);
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  BOOST_TEST(waitpid(pid, &status, 0) == pid);
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 0);
  BOOST_TEST(got == "first\nsecond\n");
}

BOOST_AUTO_TEST_CASE(out_of_bounds_memory_access_traps) {
  // With V8's trap handler on, this is caught by a guard region and V8's SIGSEGV handler,
  // inside the seccomp sandbox, and must still end as a clean trap.
  auto r = run({binary(), "run", guest("oob_load")});
  BOOST_TEST(r.exit_code == 134);
  BOOST_TEST(r.err.find("wasm trap: RuntimeError: memory access out of bounds") != std::string::npos);
}

// The fork server switch is checked like any other input; either setting runs the job.
BOOST_AUTO_TEST_CASE(fork_server_switch_is_validated_and_both_settings_work) {
  auto r = wjt::run({wjt::binary(), "run", wjt::guest("hello"), "z"}, {"WASMJAIL_ZYGOTE=yes"});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err == "wasmjail: WASMJAIL_ZYGOTE must be \"on\" or \"off\", got \"yes\"\n");
  BOOST_TEST(r.out == "");
  for (const char* v : {"WASMJAIL_ZYGOTE=on", "WASMJAIL_ZYGOTE=off"}) {
    r = wjt::run({wjt::binary(), "run", wjt::guest("hello"), "z"}, {v});
    BOOST_TEST(r.exit_code == 0, v);
    BOOST_TEST(r.out == "Hello, z!\n", v);
  }
}

// Preopened directories are open files of the guest: more than the policy's open_files is
// refused up front. With a larger limit, 249 of them still travel through the fork server
// in one message, and 250 (more than SCM_RIGHTS carries with the pipes) are cloned
// directly; the job runs either way.
BOOST_AUTO_TEST_CASE(many_preopened_directories) {
  std::string dir = wjt::temp_dir();
  std::vector<std::string> args;
  for (int i = 0; i < 250; ++i) {
    std::string d = dir + "/d" + std::to_string(i);
    mkdir(d.c_str(), 0755);
    args.push_back("--dir");
    args.push_back(d + "::/d" + std::to_string(i) + ":ro");
  }
  auto argv = [&](size_t n, const std::vector<std::string>& extra) {
    std::vector<std::string> v = {binary(), "run"};
    v.insert(v.end(), extra.begin(), extra.end());
    v.insert(v.end(), args.begin(), args.begin() + static_cast<long>(2 * n));
    v.push_back(guest("hello"));
    v.push_back("dirs");
    return v;
  };
  auto r = run(argv(65, {}));
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err == "wasmjail: error: 65 directories are mounted but the open_files limit is 64 (each is an "
                      "open file of the guest)\n");
  wjt::write_file(dir + "/many.yaml", "name: many\nextends: default\nlimits:\n  open_files: 400\n");
  for (size_t n : {249u, 250u}) {
    r = run(argv(n, {"--policy", dir + "/many.yaml"}), {"WASMJAIL_ZYGOTE=on"});
    BOOST_TEST(r.exit_code == 0, n << " dirs: " << r.err);
    BOOST_TEST(r.out == "Hello, dirs!\n");
  }
}

BOOST_AUTO_TEST_CASE(background_compile_switch_is_validated) {
  auto r = wjt::run({wjt::binary(), "run", wjt::guest("hello"), "z"}, {"WASMJAIL_BACKGROUND_COMPILE=1"});
  BOOST_TEST(r.exit_code == 2);
  BOOST_TEST(r.err == "wasmjail: WASMJAIL_BACKGROUND_COMPILE must be \"on\", \"wait\" or \"off\", got \"1\"\n");
}

BOOST_AUTO_TEST_CASE(version_names_wasmjail_v8_and_the_libraries) {
  auto r = run({binary(), "--version"});
  BOOST_TEST(r.exit_code == 0);
  for (const char* prefix : {"wasmjail ", "V8 10.2.", "libuv 1.", "libseccomp 2.", "yaml-cpp 0."})
    BOOST_TEST(("\n" + r.out).find(std::string("\n") + prefix) != std::string::npos, prefix);
  BOOST_TEST(r.out.find(" (commit ") != std::string::npos);
  r = run({binary(), "--version", "--json"});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out.find("\"v8\": \"10.2.") != std::string::npos, r.out);
  BOOST_TEST(run({binary(), "--version", "--bogus"}).exit_code == 2);
}
