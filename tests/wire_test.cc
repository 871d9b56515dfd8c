// The record pipe is hostile input: every malformed shape must be rejected, never trusted.
#include <boost/test/unit_test.hpp>

#include <cstring>

#include "supervisor/wire.h"
#include "v8host/hot_code.h"

using namespace wj;
using namespace wj::wire;

namespace {
std::string frame(uint32_t magic, uint16_t type, const std::string& payload, uint32_t len_override = UINT32_MAX) {
  FrameHeader h{magic, type, 0, len_override == UINT32_MAX ? static_cast<uint32_t>(payload.size()) : len_override};
  return std::string(reinterpret_cast<const char*>(&h), sizeof h) + payload;
}
}  // namespace

BOOST_AUTO_TEST_CASE(outcome_round_trips_byte_by_byte) {
  RunOutcome o;
  o.kind = OutcomeKind::kTrap;
  o.exit_code = 7;
  o.message = "RuntimeError: unreachable";
  o.backtrace = {"f (wasm-function[1]:0x22)"};
  o.compile_ms = 1.5;
  o.run_ms = 2.5;
  o.instantiate_ms = 0.75;
  o.peak_wasm_memory_bytes = 65536;
  std::string bytes = encode_outcome(o);
  FrameReader rd;
  for (char c : bytes) BOOST_TEST(!rd.feed(&c, 1));  // fed one byte at a time
  BOOST_REQUIRE(rd.frames().size() == 1);
  std::string err;
  auto back = decode_outcome(rd.frames()[0].payload, &err);
  BOOST_REQUIRE(back);
  BOOST_TEST(static_cast<int>(back->kind) == static_cast<int>(OutcomeKind::kTrap));
  BOOST_TEST(back->exit_code == 7);
  BOOST_TEST(back->message == o.message);
  BOOST_TEST(back->backtrace == o.backtrace);
  BOOST_TEST(back->peak_wasm_memory_bytes == 65536u);
  BOOST_TEST(back->instantiate_ms == 0.75);
}

BOOST_AUTO_TEST_CASE(violation_frame) {
  char buf[kViolationFrameSize];
  encode_violation(buf, 59, 0xc000003e);
  FrameReader rd;
  BOOST_TEST(!rd.feed(buf, sizeof buf));
  BOOST_REQUIRE(rd.frames().size() == 1);
  auto v = decode_violation(rd.frames()[0].payload);
  BOOST_REQUIRE(v);
  BOOST_TEST(v->nr == 59);
}

BOOST_AUTO_TEST_CASE(bad_magic_type_and_length_are_rejected) {
  FrameReader a;
  BOOST_TEST(a.feed(frame(0xdeadbeef, 1, "{}").data(), 14).value() == "bad frame magic");
  FrameReader b;
  BOOST_TEST(b.feed(frame(kMagic, 99, "{}").data(), 14).value() == "unknown frame type 99");
  FrameReader c;
  std::string big = frame(kMagic, 1, "", kMaxPayload + 1);
  BOOST_TEST(c.feed(big.data(), big.size()).value().find("too large") != std::string::npos);
  // Errors are sticky: later valid bytes do not reset a lying stream.
  std::string ok = frame(kMagic, 1, "{}");
  BOOST_TEST(a.feed(ok.data(), ok.size()).has_value());
}

BOOST_AUTO_TEST_CASE(outcome_fields_are_validated) {
  std::string err;
  for (const char* bad : {"", "[]", "{\"kind\":\"returned\"}", "not json",
                          "{\"kind\":\"bogus\",\"exit_code\":0,\"message\":\"\",\"backtrace\":[],\"compile_ms\":0,\"run_ms\":0,\"peak_wasm_memory_bytes\":0}",
                          "{\"kind\":\"exited\",\"exit_code\":99999999999,\"message\":\"\",\"backtrace\":[],\"compile_ms\":0,\"run_ms\":0,\"peak_wasm_memory_bytes\":0}",
                          "{\"kind\":\"exited\",\"exit_code\":1,\"message\":5,\"backtrace\":[],\"compile_ms\":0,\"run_ms\":0,\"peak_wasm_memory_bytes\":0}",
                          "{\"kind\":\"exited\",\"exit_code\":1,\"message\":\"\",\"backtrace\":[1],\"compile_ms\":0,\"run_ms\":0,\"peak_wasm_memory_bytes\":0}",
                          "{\"kind\":\"exited\",\"exit_code\":1,\"message\":\"\",\"backtrace\":[],\"compile_ms\":-1,\"run_ms\":0,\"peak_wasm_memory_bytes\":0}"}) {
    err.clear();
    BOOST_TEST(!decode_outcome(bad, &err), bad);
    BOOST_TEST(err.rfind("malformed outcome record", 0) == 0);
  }
  BOOST_TEST(!decode_violation("1234"));
}

BOOST_AUTO_TEST_CASE(compiled_code_frames_have_their_own_bound) {
  std::string code(3u << 20, 'c');  // over the 1 MiB bound of other frames
  std::string f = encode_compiled_code(reinterpret_cast<const uint8_t*>(code.data()), code.size());
  FrameReader rd;
  rd.allow_code_frame(true);
  // Fed in pieces: the turn holds across a partially received code frame.
  BOOST_TEST(!rd.feed(f.data(), 100));
  BOOST_TEST(!rd.feed(f.data() + 100, f.size() - 100));
  BOOST_REQUIRE(rd.frames().size() == 1);
  BOOST_TEST(rd.frames()[0].payload.size() == code.size());
  // Only one code frame per job.
  BOOST_TEST(rd.feed(f.data(), f.size()).value() == "compiled code out of turn");
  FrameHeader h{kMagic, static_cast<uint16_t>(FrameType::kCompiledCode), 0, kMaxCompiledCode + 1};
  FrameReader rd2;
  rd2.allow_code_frame(true);
  BOOST_TEST(rd2.feed(reinterpret_cast<const char*>(&h), sizeof h).value().find("too large") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(compiled_code_is_refused_from_the_header_out_of_turn) {
  // Refused before its payload is buffered: when the cache is off, and after any frame but
  // the sandbox record.
  FrameHeader h{kMagic, static_cast<uint16_t>(FrameType::kCompiledCode), 0, 200u << 20};
  FrameReader off;
  BOOST_TEST(off.feed(reinterpret_cast<const char*>(&h), sizeof h).value() == "compiled code out of turn");
  FrameReader late;
  late.allow_code_frame(true);
  char v[kViolationFrameSize];
  encode_violation(v, 1, 0);
  BOOST_TEST(!late.feed(v, sizeof v));
  BOOST_TEST(late.feed(reinterpret_cast<const char*>(&h), sizeof h).value() == "compiled code out of turn");
  FrameReader after_sandbox;
  after_sandbox.allow_code_frame(true);
  std::string sb = encode_sandbox({1, 0, -1});
  BOOST_TEST(!after_sandbox.feed(sb.data(), sb.size()));
  std::string empty = encode_compiled_code(nullptr, 0);
  BOOST_TEST(!after_sandbox.feed(empty.data(), empty.size()));
  BOOST_TEST(after_sandbox.frames().size() == 2u);
}

BOOST_AUTO_TEST_CASE(sandbox_record_round_trips_and_rejects_lies) {
  std::string bytes = encode_sandbox({0x3ff, 0, 7});
  FrameReader rd;
  BOOST_TEST(!rd.feed(bytes.data(), bytes.size()));
  BOOST_REQUIRE(rd.frames().size() == 1);
  BOOST_TEST(static_cast<int>(rd.frames()[0].type) == static_cast<int>(FrameType::kSandbox));
  auto back = decode_sandbox(rd.frames()[0].payload, 10);
  BOOST_REQUIRE(back);
  BOOST_TEST(back->applied == 0x3ffu);
  BOOST_TEST(back->listener_fd == 7);
  auto payload = [](uint32_t applied, uint32_t skipped, int32_t fd) {
    std::string p(12, '\0');
    std::memcpy(p.data(), &applied, 4);
    std::memcpy(p.data() + 4, &skipped, 4);
    std::memcpy(p.data() + 8, &fd, 4);
    return p;
  };
  BOOST_TEST(!decode_sandbox(payload(1u << 10, 0, -1), 10));  // unknown mechanism
  BOOST_TEST(!decode_sandbox(payload(1, 1, -1), 10));         // applied and skipped
  BOOST_TEST(!decode_sandbox(payload(1, 0, -2), 10));         // bad fd
  BOOST_TEST(!decode_sandbox(payload(1, 0, 70000), 10));
  BOOST_TEST(!decode_sandbox(payload(1, 0, -1).substr(0, 11), 10));  // short
  BOOST_TEST(decode_sandbox(payload(1, 2, -1), 10).has_value());
}

BOOST_AUTO_TEST_CASE(hot_function_records_are_bounded_and_validated) {
  std::string bytes = encode_hot_functions({1, 5, 9});
  FrameReader rd;
  BOOST_TEST(!rd.feed(bytes.data(), bytes.size()));
  BOOST_REQUIRE(rd.frames().size() == 1);
  BOOST_TEST(static_cast<int>(rd.frames()[0].type) == static_cast<int>(FrameType::kHotFunctions));
  auto back = decode_hot_functions(rd.frames()[0].payload, 10);
  BOOST_REQUIRE(back);
  BOOST_TEST((*back == std::vector<uint32_t>{1, 5, 9}));
  const std::string p = rd.frames()[0].payload;
  BOOST_TEST(!decode_hot_functions(p, 9));                   // 9 is not below the function count
  BOOST_TEST(!decode_hot_functions(p.substr(0, 10), 10));    // count disagrees with the length
  BOOST_TEST(!decode_hot_functions(p + "xxxx", 10));
  BOOST_TEST(!decode_hot_functions("", 10));
  auto payload_of = [](std::vector<uint32_t> v) {
    std::string f = encode_hot_functions(v);
    return f.substr(sizeof(FrameHeader));
  };
  BOOST_TEST(!decode_hot_functions(payload_of({3, 3}), 10));  // not strictly ascending
  BOOST_TEST(!decode_hot_functions(payload_of({4, 2}), 10));
  std::string huge(4, '\0');
  uint32_t n = wj::hot::kMaxHotFunctions + 1;
  std::memcpy(huge.data(), &n, 4);
  huge.resize(4 + 4ull * n, '\0');
  BOOST_TEST(!decode_hot_functions(huge, ~0u));
  // The reader refuses an oversized frame from its header, and more than kMaxHotFrames.
  FrameHeader h{kMagic, static_cast<uint16_t>(FrameType::kHotFunctions), 0, 4 + 4 * (wj::hot::kMaxHotFunctions + 1)};
  FrameReader big;
  BOOST_TEST(big.feed(reinterpret_cast<const char*>(&h), sizeof h).has_value());
  FrameReader many;
  for (size_t i = 0; i < kMaxHotFrames; ++i) BOOST_TEST(!many.feed(bytes.data(), bytes.size()));
  BOOST_TEST(many.feed(bytes.data(), bytes.size()).has_value());
}

BOOST_AUTO_TEST_CASE(compilation_hints_name_every_declared_function) {
  // (module (func) (func) (func)): 3 declared functions, empty bodies.
  const std::vector<uint8_t> m = {0, 'a', 's', 'm', 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 3, 4, 3, 0, 0, 0,
                                  10, 10, 3, 2, 0, 0x0b, 2, 0, 0x0b, 2, 0, 0x0b};
  BOOST_TEST(wj::hot::declared_function_count(m.data(), m.size()).value_or(0) == 3u);
  std::string err;
  auto hinted = wj::hot::with_compilation_hints(m, {1}, &err);
  BOOST_REQUIRE_MESSAGE(hinted, err);
  // The custom section sits right before the code section: name, count 3, lazy/hot/lazy.
  const std::string name = "compilationHints";
  std::vector<uint8_t> want(m.begin(), m.begin() + 20);
  want.push_back(0);
  want.push_back(static_cast<uint8_t>(1 + name.size() + 1 + 3));
  want.push_back(static_cast<uint8_t>(name.size()));
  want.insert(want.end(), name.begin(), name.end());
  for (uint8_t b : {3, 0x01, 0x2a, 0x01}) want.push_back(b);
  want.insert(want.end(), m.begin() + 20, m.end());
  BOOST_TEST((*hinted == want));
  // A module that already had such a section gets only ours.
  auto again = wj::hot::with_compilation_hints(*hinted, {0, 2}, &err);
  BOOST_REQUIRE(again);
  BOOST_TEST(again->size() == hinted->size());
  BOOST_TEST(!wj::hot::with_compilation_hints(m, {3}, &err));     // out of range
  BOOST_TEST(!wj::hot::with_compilation_hints(m, {2, 1}, &err));  // out of order
  std::vector<uint8_t> cut(m.begin(), m.end() - 3);
  BOOST_TEST(!wj::hot::with_compilation_hints(cut, {0}, &err));
  // Serialized data of another shape yields nothing rather than a guess.
  std::vector<uint8_t> junk(64, 4);
  BOOST_TEST(!wj::hot::run_functions(junk.data(), junk.size(), 3));
  BOOST_TEST(!wj::hot::run_functions(nullptr, 0, 3));
}

BOOST_AUTO_TEST_CASE(the_hot_set_is_what_ran_within_a_budget) {
  // V8 10.2's serialization: 16-byte header, total code size, a marker per function.
  std::vector<uint8_t> ser(16 + 8, 0);
  for (uint8_t marker : {3, 2, 4, 3}) {
    ser.push_back(marker);
    if (marker == 4) ser.insert(ser.end(), 11 * 4 + 4 + 1, 0);  // code header, empty code
  }
  auto fns = wj::hot::run_functions(ser.data(), ser.size(), 4);
  BOOST_REQUIRE(fns);
  BOOST_TEST((fns->turbofan == std::vector<uint32_t>{2}));
  BOOST_TEST((fns->liftoff == std::vector<uint32_t>{0, 3}));
  BOOST_TEST(!wj::hot::run_functions(ser.data(), ser.size(), 5));      // fewer markers than functions
  BOOST_TEST(!wj::hot::run_functions(ser.data(), ser.size() - 1, 4));  // cut inside the code header
  // Optimized ones always; then what ran on Liftoff, smallest body first, within the budget.
  const std::vector<uint32_t> sizes = {50, 7, 9, 30};
  BOOST_TEST((wj::hot::select_hot(*fns, &sizes, 1000) == std::vector<uint32_t>{0, 2, 3}));
  BOOST_TEST((wj::hot::select_hot(*fns, &sizes, 30) == std::vector<uint32_t>{2, 3}));
  BOOST_TEST((wj::hot::select_hot(*fns, &sizes, 29) == std::vector<uint32_t>{2}));
  BOOST_TEST((wj::hot::select_hot(*fns, nullptr, 1000) == std::vector<uint32_t>{2}));
  // The supervisor's bound: the entry's functions stay, new ones join smallest first.
  const std::vector<uint32_t> body = {10, 20, 30, 40, 50};
  BOOST_TEST((wj::hot::merge_within_budget({4}, {0, 1, 2, 3}, body, 110) == std::vector<uint32_t>{0, 1, 2, 4}));
  BOOST_TEST((wj::hot::merge_within_budget({4}, {3, 4}, body, 80) == std::vector<uint32_t>{4}));  // 40 does not fit
  BOOST_TEST((wj::hot::merge_within_budget({}, {9, 1, 1, 0}, body, 1000) == std::vector<uint32_t>{0, 1}));
  BOOST_TEST((wj::hot::merge_within_budget({3}, {}, body, 0) == std::vector<uint32_t>{3}));
  // Body sizes from the code section: (module (func) (func) (func)), bodies of 2 bytes.
  const std::vector<uint8_t> m = {0, 'a', 's', 'm', 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 3, 4, 3, 0, 0, 0,
                                  10, 10, 3, 2, 0, 0x0b, 2, 0, 0x0b, 2, 0, 0x0b};
  auto bodies = wj::hot::function_body_sizes(m.data(), m.size());
  BOOST_REQUIRE(bodies);
  BOOST_TEST((*bodies == std::vector<uint32_t>{2, 2, 2}));
  std::vector<uint8_t> cut(m.begin(), m.end() - 1);
  BOOST_TEST(!wj::hot::function_body_sizes(cut.data(), cut.size()));
}
