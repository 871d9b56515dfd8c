// storage/archive.h: what unpacking refuses (paths out of DEST, links, special files) and
// what packing leaves out; and the worker config's validation.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>

#include "policies/worker_config.h"
#include "server/queue_job.h"
#include "storage/archive.h"
#include "tests/testlib.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace fs = std::filesystem;

namespace {

struct Entry {
  std::string path;
  mode_t type = AE_IFREG;
  std::string data, link;
  bool hardlink = false;
  mode_t perm = 0644;
};

std::string make_tar(const std::vector<Entry>& entries) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open2(
      a, &out, nullptr,
      [](archive*, void* ud, const void* b, size_t n) -> la_ssize_t {
        static_cast<std::string*>(ud)->append(static_cast<const char*>(b), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr, nullptr);
  for (const auto& e : entries) {
    archive_entry* en = archive_entry_new();
    archive_entry_set_pathname(en, e.path.c_str());
    archive_entry_set_filetype(en, e.type);
    archive_entry_set_perm(en, e.perm);
    if (e.type == AE_IFLNK) archive_entry_set_symlink(en, e.link.c_str());
    if (e.hardlink) archive_entry_set_hardlink(en, e.link.c_str());
    if (e.type == AE_IFREG && !e.hardlink) archive_entry_set_size(en, static_cast<la_int64_t>(e.data.size()));
    archive_write_header(a, en);
    if (!e.data.empty()) archive_write_data(a, e.data.data(), e.data.size());
    archive_entry_free(en);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(pack_then_unpack_round_trips_files_and_folders_and_leaves_links_out) {
  std::string src = wjt::temp_dir(), dst = wjt::temp_dir();
  fs::create_directories(src + "/out/sub");
  wjt::write_file(src + "/out/a.txt", "alpha");
  wjt::write_file(src + "/out/sub/b.bin", std::string(100000, 'b'));
  symlink("/etc/passwd", (src + "/out/link").c_str());
  mkfifo((src + "/out/fifo").c_str(), 0644);
  std::string tar;
  wj::PackStats ps;
  BOOST_REQUIRE(!wj::pack_folders({{"res", src + "/out"}}, 1 << 20, &tar, &ps));
  BOOST_CHECK_EQUAL(ps.files, 2u);
  BOOST_CHECK_EQUAL(ps.skipped, 2u);  // the symlink and the FIFO
  wj::UnpackStats us;
  BOOST_REQUIRE(!wj::unpack_archive(tar, dst, 1 << 20, &us));
  BOOST_CHECK_EQUAL(wjt::read_file(dst + "/res/a.txt"), "alpha");
  BOOST_CHECK_EQUAL(wjt::read_file(dst + "/res/sub/b.bin"), std::string(100000, 'b'));
  BOOST_CHECK(!fs::exists(fs::symlink_status(dst + "/res/link")));
  // A cap on the archive's size is enforced while packing.
  BOOST_CHECK(
      wj::pack_folders({{"res", src + "/out"}}, 50000, &tar).value_or("").find("larger than its limit") !=
      std::string::npos);
  fs::remove_all(src);
  fs::remove_all(dst);
}

BOOST_AUTO_TEST_CASE(unpack_refuses_paths_out_of_dest_links_and_special_files) {
  std::string dst = wjt::temp_dir();
  auto err = [&](const std::vector<Entry>& es) {
    return wj::unpack_archive(make_tar(es), dst, 1 << 20).value_or("");
  };
  BOOST_CHECK_NE(err({{"../escape", AE_IFREG, "x"}}).find("leads out of the folder"), std::string::npos);
  BOOST_CHECK_NE(err({{"a/../../escape", AE_IFREG, "x"}}).find("leads out of the folder"), std::string::npos);
  BOOST_CHECK_NE(err({{"/etc/escape", AE_IFREG, "x"}}).find("absolute path"), std::string::npos);
  BOOST_CHECK(!fs::exists(fs::path(dst).parent_path() / "escape"));
  // Links and devices are skipped and counted; the plain file beside them is written.
  wj::UnpackStats us;
  BOOST_REQUIRE(!wj::unpack_archive(make_tar({{"l", AE_IFLNK, "", "/etc"},
                                              {"h", AE_IFREG, "", "/etc/passwd", true},
                                              {"dev", AE_IFCHR},
                                              {"fifo", AE_IFIFO},
                                              {"ok", AE_IFREG, "fine", "", false, 06755}}),
                                    dst, 1 << 20, &us));
  BOOST_CHECK_EQUAL(us.refused, 4u);
  BOOST_CHECK_EQUAL(us.files, 1u);
  BOOST_CHECK(!fs::exists(fs::symlink_status(dst + "/l")));
  BOOST_CHECK(!fs::exists(fs::symlink_status(dst + "/h")));
  BOOST_CHECK_EQUAL(wjt::read_file(dst + "/ok"), "fine");
  struct stat sb;
  BOOST_REQUIRE_EQUAL(stat((dst + "/ok").c_str(), &sb), 0);
  BOOST_CHECK_EQUAL(sb.st_mode & 07000, 0u);  // no set-id bits, whatever the archive says
  // A symlink already in DEST is never followed, neither as a folder nor as a file.
  std::string outside = wjt::temp_dir();
  symlink(outside.c_str(), (dst + "/dirlink").c_str());
  symlink((outside + "/target").c_str(), (dst + "/filelink").c_str());
  BOOST_CHECK_NE(err({{"dirlink/x", AE_IFREG, "x"}}).find("not a plain folder"), std::string::npos);
  BOOST_CHECK_NE(err({{"filelink", AE_IFREG, "x"}}).find("not a plain file"), std::string::npos);
  BOOST_CHECK(fs::is_empty(outside));
  // Sizes over the cap and garbage fail with a message.
  BOOST_CHECK_NE(wj::unpack_archive(make_tar({{"big", AE_IFREG, std::string(5000, 'x')}}), dst, 1000)
                     .value_or("")
                     .find("exceed"),
                 std::string::npos);
  BOOST_CHECK(wj::unpack_archive("this is not a tar archive at all, not even close", dst, 1000).has_value());
  fs::remove_all(dst);
  fs::remove_all(outside);
}

BOOST_AUTO_TEST_CASE(worker_config_is_validated_with_locations) {
  std::string dir = wjt::temp_dir();
  auto load = [&](const std::string& text) {
    wjt::write_file(dir + "/w.yaml", text);
    auto c = wj::load_worker_config(dir + "/w.yaml");
    return c ? std::string() : c.error().str();
  };
  BOOST_CHECK_EQUAL(
      load("queue: {nats: [\"nats://127.0.0.1:4222,nats://127.0.0.1:4223\"], replicas: 3}\nconcurrency: 4\n"
           "ack_wait: 10s\nmax_deliver: 3\nmetrics_listen: [unix:/tmp/x.sock]\n"),
      "");
  BOOST_CHECK_NE(load("concurency: 4\n").find("concurrency"), std::string::npos);  // closest key suggested
  BOOST_CHECK_NE(load("queue: {nats: [\"http://x\"]}\n").find("must start with nats:// or tls://"),
                 std::string::npos);
  BOOST_CHECK_NE(load("ack_wait: 10ms\n").find("at least 1s"), std::string::npos);
  BOOST_CHECK_NE(load("queue: {user: a}\n").find("go together"), std::string::npos);
  BOOST_CHECK_NE(load("queue: {stream: \"a b\"}\n").find("queue.stream"), std::string::npos);
  BOOST_CHECK_NE(load("metrics_listen: [\"tcp:127.0.0.1:9000\"]\n").find("token_file"), std::string::npos);
  BOOST_CHECK_NE(load("max_deliver: 0\n").find("w.yaml:1:"), std::string::npos);
  auto shipped = wj::load_worker_config(std::string(WJ_SOURCE_DIR) + "/configs/worker.yaml");
  BOOST_CHECK_MESSAGE(static_cast<bool>(shipped), (shipped ? std::string() : shipped.error().str()));
  // serve's queue: key makes it a gateway; it needs servers.
  wjt::write_file(dir + "/s.yaml", "queue: {nats: [\"nats://127.0.0.1:4222\"], replicas: 1}\n");
  auto sc = wj::load_server_config(dir + "/s.yaml");
  BOOST_REQUIRE(static_cast<bool>(sc));
  BOOST_CHECK_EQUAL(sc.value().queue.urls.size(), 1u);
  BOOST_CHECK_EQUAL(sc.value().queue.replicas, 1);
  wjt::write_file(dir + "/s.yaml", "queue: {replicas: 1}\n");
  auto sc2 = wj::load_server_config(dir + "/s.yaml");
  BOOST_CHECK(!sc2 && sc2.error().str().find("queue needs nats") != std::string::npos);
  auto u = wj::parse_nats_urls("nats://a:1,,nats://b:2");
  BOOST_CHECK(!u);
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(blob_cache_is_trimmed_least_recently_used_first_never_recent_entries) {
  std::string dir = wjt::temp_dir();
  auto age = [&](const std::string& name, int minutes) {
    wjt::write_file(dir + "/" + name, std::string(1000, 'x'));
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= minutes * 60;
    ts[1] = ts[0];
    utimensat(AT_FDCWD, (dir + "/" + name).c_str(), ts, 0);
  };
  age("oldest", 60);
  age("older", 30);
  age("recent", 1);
  wj::trim_blob_cache(dir, 1500);
  BOOST_CHECK(!fs::exists(dir + "/oldest"));
  BOOST_CHECK(!fs::exists(dir + "/older"));
  BOOST_CHECK(fs::exists(dir + "/recent"));
  age("new1", 0);
  age("new2", 0);
  wj::trim_blob_cache(dir, 10);  // everything is recent: kept, whatever the cap
  BOOST_CHECK(fs::exists(dir + "/new1") && fs::exists(dir + "/new2") && fs::exists(dir + "/recent"));
  fs::remove_all(dir);
}
