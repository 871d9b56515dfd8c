#include <boost/test/unit_test.hpp>

#include "policies/job.h"

using namespace wj;

BOOST_AUTO_TEST_CASE(env_assignment) {
  std::string err;
  auto kv = parse_env_assignment("A=b=c", &err);
  BOOST_REQUIRE(kv);
  BOOST_TEST(kv->first == "A");
  BOOST_TEST(kv->second == "b=c");
  BOOST_TEST(!parse_env_assignment("=x", &err));
  BOOST_TEST(err.find("empty name") != std::string::npos);
  BOOST_TEST(!parse_env_assignment("x", &err));
  BOOST_TEST(!parse_env_assignment(std::string("A=x\0y", 5), &err));
  BOOST_TEST(err.find("NUL") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(dir_mapping) {
  std::string err;
  auto d = parse_dir_mapping("/tmp/in::/data:ro", &err);
  BOOST_REQUIRE(d);
  BOOST_TEST(d->host_path == "/tmp/in");
  BOOST_TEST(d->guest_path == "/data");
  BOOST_TEST(d->read_only);
  d = parse_dir_mapping("/tmp/out::/out", &err);
  BOOST_REQUIRE(d);
  BOOST_TEST(!d->read_only);
  d = parse_dir_mapping("/srv", &err);
  BOOST_REQUIRE(d);
  BOOST_TEST(d->guest_path == "/srv");
  BOOST_TEST(!parse_dir_mapping("::/x", &err));
  BOOST_TEST(!parse_dir_mapping("/x::", &err));
}
