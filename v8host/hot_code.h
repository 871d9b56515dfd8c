// Hot code: which functions of a module V8 optimized (TurboFan) in a job, and a module that
// asks V8 to compile exactly those with TurboFan. Byte-level helpers, no V8 calls.
//
// A job process reports only a list of declared-function indices (read from V8's own
// serialization of its module, see turbofan_functions); the code cache then gets code that a
// compile-only process, which never runs guest code, compiled from the module with a
// compilation-hints section naming those functions (with_compilation_hints).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wj::hot {

// The most functions a hot set names (a bound on the wire record and the cache entry).
constexpr uint32_t kMaxHotFunctions = 1u << 16;

// The number of functions the module declares (its function section's count); nullopt when
// the section structure is malformed.
std::optional<uint32_t> declared_function_count(const uint8_t* module, size_t size);

// From V8 10.2's serialized module (CompiledWasmModule::Serialize: a 16-byte header, the
// total code size, then per declared function a marker byte, kTurboFanFunction = 4 followed
// by its code): the declared-function indices that have TurboFan code, ascending. Empty when
// the data does not parse exactly (another V8 layout: nothing is reported).
std::vector<uint32_t> turbofan_functions(const uint8_t* serialized, size_t size, uint32_t declared);

// The module with a "compilationHints" section (V8's --experimental-wasm-compilation-hints)
// just before its code section: `hot` (ascending declared indices) eager on TurboFan, every
// other function lazy. Any compilationHints section the module had is dropped. nullopt when
// the module's sections cannot be read or an index is out of range.
std::optional<std::vector<uint8_t>> with_compilation_hints(const std::vector<uint8_t>& module,
                                                          const std::vector<uint32_t>& hot, std::string* error);

}  // namespace wj::hot
