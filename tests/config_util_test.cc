#include <boost/test/unit_test.hpp>

#include "policies/config_util.h"

using namespace wj::cfg;

BOOST_AUTO_TEST_CASE(durations) {
  std::string err;
  BOOST_TEST(parse_duration_ms("500ms", &err) == 500.0);
  BOOST_TEST(parse_duration_ms("30s", &err) == 30000.0);
  BOOST_TEST(parse_duration_ms("1.5s", &err) == 1500.0);
  BOOST_TEST(parse_duration_ms("2m", &err) == 120000.0);
  BOOST_TEST(parse_duration_ms("30", &err) < 0);
  BOOST_TEST(err.find("needs a unit") != std::string::npos);
  BOOST_TEST(parse_duration_ms("30 sec", &err) < 0);
  BOOST_TEST(err.find("unknown duration unit \"sec\"") != std::string::npos);
  BOOST_TEST(parse_duration_ms("-1s", &err) < 0);
  BOOST_TEST(format_duration_ms(30000) == "30s");
  BOOST_TEST(format_duration_ms(500) == "500ms");
}

BOOST_AUTO_TEST_CASE(sizes) {
  std::string err;
  BOOST_TEST(parse_bytes("256MiB", &err).value() == 256ull << 20);
  BOOST_TEST(parse_bytes("4096", &err).value() == 4096u);
  BOOST_TEST(parse_bytes("1GB", &err).value() == 1000000000ull);
  BOOST_TEST(!parse_bytes("12 parsecs", &err));
  BOOST_TEST(err.find("unknown size unit \"parsecs\"") != std::string::npos);
  BOOST_TEST(!parse_bytes("0.5B", &err));
  BOOST_TEST(format_bytes(256ull << 20) == "256MiB");
  BOOST_TEST(format_bytes(1000) == "1000B");
}

BOOST_AUTO_TEST_CASE(unknown_key_suggests_and_locates) {
  Doc doc{"p.yaml"};
  YAML::Node n = parse_text("limits:\n  wall_tme: 3s\n", doc);
  try {
    check_map(n["limits"], doc, "limits", {"wall_time", "cpu_time"});
    BOOST_FAIL("expected an error");
  } catch (const ConfigError& e) {
    BOOST_TEST(e.error.str() ==
               "p.yaml:2:3: unknown key \"wall_tme\" in limits (did you mean \"wall_time\"?)");
  }
}

BOOST_AUTO_TEST_CASE(duplicate_keys_and_syntax_errors_are_located) {
  Doc doc{"j.json"};
  try {
    check_map(parse_text("{\"a\": 1,\n \"a\": 2}", doc), doc, "job", {"a"});
    BOOST_FAIL("expected an error");
  } catch (const ConfigError& e) {
    BOOST_TEST(e.error.str() == "j.json:2:2: duplicate key \"a\" in job");
  }
  try {
    parse_text("{\"a\": [1, 2}", doc);
    BOOST_FAIL("expected an error");
  } catch (const ConfigError& e) {
    BOOST_TEST(e.error.where.line == 1);
    BOOST_TEST(e.error.message.rfind("syntax error", 0) == 0);
  }
}

BOOST_AUTO_TEST_CASE(a_second_document_is_an_error) {
  Doc doc{"two.yaml"};
  try {
    parse_text("a: 1\n---\nb: 2\n", doc);
    BOOST_FAIL("expected an error");
  } catch (const ConfigError& e) {
    BOOST_TEST(e.error.str() ==
               "two.yaml:2:1: content after the first YAML document; a file holds exactly one document");
  }
  try {
    parse_text("{\"a\": 1},junk", doc);  // yaml-cpp's LoadAll never ends on this
    BOOST_FAIL("expected an error");
  } catch (const ConfigError& e) {
    BOOST_TEST(e.error.str() ==
               "two.yaml:1:9: content after the first YAML document; a file holds exactly one document");
  }
  BOOST_TEST(parse_text("---\na: 1\n...\n", doc)["a"].as<int>() == 1);
}
