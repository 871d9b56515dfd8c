// `wasmjail --version`: wasmjail's version and commit, and the versions of the libraries a
// job depends on, as loaded at run time where the library can tell (V8, libuv, libseccomp,
// OpenSSL) and as built against otherwise (yaml-cpp has no run-time version call).
#include <openssl/crypto.h>
#include <seccomp.h>
#include <uv.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli.h"
#include "v8host/version.h"
#include "wj_git_commit.h"

#ifndef WJ_VERSION
#define WJ_VERSION "0.0.0"
#endif
#ifndef WJ_YAML_CPP_VERSION
#define WJ_YAML_CPP_VERSION "unknown"
#endif

namespace wj::cli {

int version(int argc, char** argv) {
  const scmp_version* sv = seccomp_version();
  std::string seccomp =
      std::to_string(sv->major) + "." + std::to_string(sv->minor) + "." + std::to_string(sv->micro);
  std::string nlohmann = std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + "." +
                         std::to_string(NLOHMANN_JSON_VERSION_MINOR) + "." +
                         std::to_string(NLOHMANN_JSON_VERSION_PATCH);
  std::string text = std::string("wasmjail ") + WJ_VERSION + " (commit " + WJ_GIT_COMMIT + ")\n" + "V8 " +
                     v8_version() + "\n" + "libuv " + uv_version_string() + "\n" + "libseccomp " + seccomp +
                     "\n" + "yaml-cpp " + WJ_YAML_CPP_VERSION + "\n" + "nlohmann_json " + nlohmann + "\n" +
                     OpenSSL_version(OPENSSL_VERSION) + "\n";
  if (argc > 0 && std::string(argv[0]) == "--json") {
    nlohmann::ordered_json j{{"wasmjail", WJ_VERSION},    {"commit", WJ_GIT_COMMIT},
                             {"v8", v8_version()},        {"libuv", uv_version_string()},
                             {"libseccomp", seccomp},     {"yaml_cpp", WJ_YAML_CPP_VERSION},
                             {"nlohmann_json", nlohmann}, {"openssl", OpenSSL_version(OPENSSL_VERSION)}};
    text = j.dump(2) + "\n";
  } else if (argc > 0) {
    std::fprintf(stderr, "wasmjail --version: unknown option %s (only --json)\n", argv[0]);
    return kExitUsage;
  }
  std::fputs(text.c_str(), stdout);
  return 0;
}

}  // namespace wj::cli
