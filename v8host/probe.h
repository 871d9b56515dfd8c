// The escape probe: a test-only import module that makes a chosen raw syscall from inside
// the sandboxed child, standing in for a guest that found native code execution in V8.
// Compiled only into the test binary (wasmjail_probe, WASMJAIL_TEST_PROBE=1); the released
// wasmjail has neither this module nor its name (tests/sandbox_test.cc checks both).
#pragma once

#ifdef WASMJAIL_TEST_PROBE
#include <v8.h>

#include <string>

namespace wj::probe {

constexpr const char* kModule = "wasmjail_probe";
// "syscall": (nr, a0..a5: i64) -> i64, the raw result or -errno.
// "garbage": (n: i64) -> i64, writes n bytes that are no valid record to the record pipe.
bool signature(const std::string& name, std::string* params);  // 'I' per i64 param; returns i64
v8::Local<v8::Object> make_module(v8::Isolate* iso, v8::Local<v8::Context> ctx);

}  // namespace wj::probe
#endif
