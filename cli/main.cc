// wasmjail: a hardened executor for untrusted WebAssembly jobs.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "cli/cli.h"
#include "supervisor/detached_compile.h"
#include "supervisor/zygote.h"

namespace {

constexpr const char* kUsage =
    "usage: wasmjail COMMAND [ARGS...]\n"
    "\n"
    "commands:\n"
    "  run     run one WASI module from the command line (wasmjail run --help)\n"
    "  exec    run a JobSpecWasm job file and print its result JSON (wasmjail exec --help)\n"
    "  serve   the HTTP/JSON API on a unix socket or loopback TCP (wasmjail serve --help)\n"
    "  worker  take jobs from a NATS JetStream queue and run them here (wasmjail worker --help)\n"
    "  submit  put a job on the NATS JetStream queue, wait for its result (wasmjail submit --help)\n"
    "  policy  check policy files, show a resolved policy (wasmjail policy --help)\n"
    "  doctor  what this host supports, which shipped policies can run here\n"
    "  help    show this message\n"
    "  --version  wasmjail's version and commit, and its libraries' (V8, libuv, libseccomp, yaml-cpp)\n";

}  // namespace

int main(int argc, char** argv) {
  // A clean fork server started by a serve (Zygote::start_clean) runs here and never returns.
  wj::Zygote::run_helper_if_requested();
  // A detached hot-code compile started by a one-shot run or exec (detached_compile.h).
  wj::run_hot_compile_helper_if_requested();
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return wj::cli::kExitUsage;
  }
  std::string cmd = argv[1];
  // The performance switches (README, "Performance") take on or off; anything else is a typo.
  // WASMJAIL_BACKGROUND_COMPILE also takes "wait" (CodeCache::background_compile_waits).
  for (const char* name : {"WASMJAIL_ZYGOTE", "WASMJAIL_BACKGROUND_COMPILE"}) {
    const char* v = std::getenv(name);
    const bool bg = std::strcmp(name, "WASMJAIL_BACKGROUND_COMPILE") == 0;
    if (v && *v && std::strcmp(v, "on") != 0 && std::strcmp(v, "off") != 0 && !(bg && std::strcmp(v, "wait") == 0)) {
      std::fprintf(stderr, "wasmjail: %s must be \"on\"%s or \"off\", got \"%s\"\n", name,
                   bg ? ", \"wait\"" : "", v);
      return wj::cli::kExitUsage;
    }
  }
  // The fork server must be forked while this process has a single thread: now. It pays
  // off over many jobs (serve); for one job (run, exec) forking it costs more than it saves
  // (measured, BENCHMARKS.md). WASMJAIL_ZYGOTE=on|off overrides.
  const char* z = std::getenv("WASMJAIL_ZYGOTE");
  std::string zygote = z ? z : "";
  // WASMJAIL_POOL=on (tests): one-shot jobs run in a warm pooled process, which needs one.
  const char* pool = std::getenv("WASMJAIL_POOL");
  if (pool && std::strcmp(pool, "on") == 0) zygote = "on";
  if (zygote == "on" ? (cmd == "run" || cmd == "exec" || cmd == "serve") : (zygote != "off" && (cmd == "serve" || cmd == "worker")))
    wj::Zygote::start();
  // One-shot commands leave without running static destructors (libnode's among them: about
  // 2% of a `run`'s samples under perf): what they wrote is flushed first; nothing else is
  // pending.
  auto leave = [](int rc) {
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    std::_Exit(rc);
  };
  if (cmd == "run") leave(wj::cli::run(argc - 2, argv + 2));
  if (cmd == "exec") leave(wj::cli::exec(argc - 2, argv + 2));
  if (cmd == "serve") return wj::cli::serve(argc - 2, argv + 2);
  if (cmd == "worker") return wj::cli::worker(argc - 2, argv + 2);
  if (cmd == "submit") leave(wj::cli::submit(argc - 2, argv + 2));
  if (cmd == "policy") return wj::cli::policy(argc - 2, argv + 2);
  if (cmd == "--version" || cmd == "version") return wj::cli::version(argc - 2, argv + 2);
  if (cmd == "doctor") leave(wj::cli::doctor(argc - 2, argv + 2));
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::fprintf(stderr, "wasmjail: unknown command \"%s\"\n%s", cmd.c_str(), kUsage);
  return wj::cli::kExitUsage;
}
