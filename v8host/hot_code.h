// Hot code: which functions of a module a job ran and V8 optimized (TurboFan), and a module
// that asks V8 to compile exactly those with TurboFan. Byte-level helpers, no V8 calls.
//
// A job process reports only a list of declared-function indices (read from V8's own
// serialization of its module, see run_functions); the code cache then gets code that a
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
// by its code): `turbofan`, the declared-function indices that have TurboFan code, and
// `liftoff`, those that have Liftoff code (kLiftoffFunction = 3: with lazy compilation, those
// the run called and V8 did not optimize), each ascending. nullopt when the data does not
// parse exactly (another V8 layout: nothing is reported).
struct RunFunctions {
  std::vector<uint32_t> turbofan, liftoff;
};
std::optional<RunFunctions> run_functions(const uint8_t* serialized, size_t size, uint32_t declared);

// The body size in bytes of each declared function, from the code section (index = declared
// index); nullopt when the sections cannot be read or the counts disagree.
std::optional<std::vector<uint32_t>> function_body_sizes(const uint8_t* module, size_t size);

// The hot set a job reports: every function V8 optimized, then the functions it ran on
// Liftoff, smallest body first, while their bodies add up to at most `liftoff_budget` bytes
// (a bound on what the compile-only child spends on TurboFan). Ascending, at most
// kMaxHotFunctions. With no body sizes (nullptr), only the optimized ones.
std::vector<uint32_t> select_hot(const RunFunctions& fns, const std::vector<uint32_t>* body_sizes,
                                 uint64_t liftoff_budget);

// The set a compile-only child compiles: `have` (what the entry has, kept), then the other
// functions of `reported`, smallest body first, while all their bodies add up to at most
// `budget` bytes. Ascending. The supervisor's bound on what a (hostile) job's report can
// make it compile; indices without a size (out of range) are dropped.
std::vector<uint32_t> merge_within_budget(const std::vector<uint32_t>& have, const std::vector<uint32_t>& reported,
                                          const std::vector<uint32_t>& body_sizes, uint64_t budget);

// The bytes of wasm function bodies a compile-only child compiles on TurboFan for the hot
// set of a job: what the functions a job ran on Liftoff may add up to. TurboFan compiles
// about 1.2 MB of bodies per CPU second here (CPython's start-up set: 2,296 functions,
// 1.5 MB, 1.2 s), so about 2 s.
constexpr uint64_t kHotLiftoffBudget = 2u << 20;
// What an entry's functions may add up to, in bytes of wasm bodies, as runs add to it
// (about 7 s of TurboFan; functions already in the entry stay, new ones are held back).
constexpr uint64_t kHotTotalBudget = 8u << 20;

// The module with a "compilationHints" section (V8's --experimental-wasm-compilation-hints)
// just before its code section: `hot` (ascending declared indices) eager on TurboFan, every
// other function lazy. Any compilationHints section the module had is dropped. nullopt when
// the module's sections cannot be read or an index is out of range.
std::optional<std::vector<uint8_t>> with_compilation_hints(const std::vector<uint8_t>& module,
                                                          const std::vector<uint32_t>& hot, std::string* error);

}  // namespace wj::hot
