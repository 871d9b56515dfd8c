// Which WebAssembly features a module may use: everything V8 10.2 enables by default
// runs; a module needing a proposal V8 lacks is refused with a message naming it.
#include <boost/test/unit_test.hpp>

#include <string>

#include "tests/testlib.h"

using wjt::binary;
using wjt::guest;
using wjt::run;

BOOST_AUTO_TEST_CASE(default_features_all_run) {
  auto r = run({binary(), "run", guest("features_default")});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "features ok\n");
  BOOST_TEST(r.err == "");
}

BOOST_AUTO_TEST_CASE(cxx_program_with_simd_runs) {
  std::string d = wjt::temp_dir();
  auto r = run({binary(), "run", "--dir", d + "::/data", guest("cxx_program"), "pear", "apple", "pear"});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "apple=1\npear=2\nsum=249500\nwritten by C++\n");
}

BOOST_AUTO_TEST_CASE(missing_proposals_are_named) {
  const std::pair<const char*, const char*> cases[] = {
      {"needs_tail_call", "tail-call"},
      {"needs_memory64", "memory64"},
      {"needs_extended_const", "extended constant expressions"},
      {"needs_relaxed_simd", "relaxed SIMD"},
      {"needs_multi_memory", "multi-memory"},
  };
  for (const auto& [name, feature] : cases) {
    auto r = run({binary(), "run", guest(name)});
    BOOST_TEST_CONTEXT(name) {
      BOOST_TEST(r.exit_code == 2);
      BOOST_TEST(r.err.find(guest(name) + ": invalid module: ") != std::string::npos);
      BOOST_TEST(r.err.find(std::string("(the module needs the WebAssembly ") + feature +
                            " proposal, which wasmjail's V8 10.2 does not support)\n") != std::string::npos);
    }
  }
}
