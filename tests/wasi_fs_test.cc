// WASI filesystem end to end: guests built from tests/guests/ call the WASI imports
// directly (no libc path handling) through `wasmjail run`, and each test asserts both what
// the guest saw (its printed errnos) and what happened on the host.
#include <boost/test/unit_test.hpp>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testlib.h"

using wjt::binary;
using wjt::guest;
using wjt::run;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::set<std::string> listing(const std::string& dir) {
  std::set<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (!d) return names;
  while (dirent* e = readdir(d)) names.insert(e->d_name);
  closedir(d);
  return names;
}

// What a file looks like from the host: content, mtime, inode, link count.
struct Snapshot {
  std::string content;
  timespec mtime{};
  ino_t ino = 0;
  nlink_t nlink = 0;
  bool operator==(const Snapshot& o) const {
    return content == o.content && mtime.tv_sec == o.mtime.tv_sec && mtime.tv_nsec == o.mtime.tv_nsec &&
           ino == o.ino && nlink == o.nlink;
  }
};

std::ostream& operator<<(std::ostream& os, const Snapshot& s) {
  return os << "{'" << s.content << "' mtime " << s.mtime.tv_sec << "." << s.mtime.tv_nsec << " ino " << s.ino
            << " nlink " << s.nlink << "}";
}

Snapshot snapshot(const std::string& path) {
  Snapshot s;
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return s;
  s.content = read_file(path);
  s.mtime = st.st_mtim;
  s.ino = st.st_ino;
  s.nlink = st.st_nlink;
  return s;
}

void mkdir_p(const std::string& p) {
  BOOST_REQUIRE(mkdir(p.c_str(), 0755) == 0);
}
void symlink_at(const std::string& target, const std::string& path) {
  BOOST_REQUIRE(symlink(target.c_str(), path.c_str()) == 0);
}

// T/outside/secret.txt is the sentinel; T/jail is preopened as "/".
struct Jail {
  std::string root = wjt::temp_dir();
  std::string jail = root + "/jail", outside = root + "/outside", secret = outside + "/secret.txt";
  Jail() {
    mkdir_p(outside);
    mkdir_p(jail);
    mkdir_p(jail + "/sub");
    wjt::write_file(secret, "top secret");
    wjt::write_file(jail + "/file.txt", "inside");
    symlink_at("/etc", jail + "/etc_link");        // absolute, planted by the host
    symlink_at("../outside", jail + "/out_link");  // relative, leads out
    symlink_at("chain2", jail + "/chain1");        // a chain that leads out
    symlink_at("sub/../../outside/secret.txt", jail + "/chain2");
    symlink_at("loop2", jail + "/loop1");
    symlink_at("loop1", jail + "/loop2");
    symlink_at("nowhere", jail + "/dangling");
    symlink_at("file.txt", jail + "/good_link");
  }
};

std::vector<std::string> probe(const std::vector<std::string>& dirs, const std::vector<std::string>& ops) {
  std::vector<std::string> argv = {binary(), "run"};
  for (const auto& d : dirs) {
    argv.push_back("--dir");
    argv.push_back(d);
  }
  argv.push_back(guest("fs_probe"));
  argv.insert(argv.end(), ops.begin(), ops.end());
  return argv;
}

std::string lines(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& l : v) s += l + "\n";
  return s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(escape_attempts_fail_and_touch_nothing_outside) {
  Jail j;
  Snapshot before = snapshot(j.secret);
  std::set<std::string> outside_before = listing(j.outside);
  auto r = run(probe({j.jail + "::/"}, {"read|file.txt",
                                        "read|good_link",
                                        "read|../outside/secret.txt",
                                        "read|sub/../../outside/secret.txt",
                                        "read|sub/../../../../../../etc/passwd",
                                        "read|/etc/passwd",
                                        "read|etc_link/passwd",
                                        "read|out_link/secret.txt",
                                        "read|chain1",
                                        "readnf|good_link",
                                        "read|loop1",
                                        "read|dangling",
                                        "readnul",
                                        "longname|300",
                                        "longpath|5000",
                                        "write|../outside/new.txt",
                                        "write|out_link/secret.txt",
                                        "write|chain1",
                                        "append|chain1",
                                        "truncate|chain1",
                                        "unlink|out_link/secret.txt",
                                        "rename|file.txt|../outside/moved",
                                        "rename|out_link/secret.txt|stolen",
                                        "mkdir|../outside/d",
                                        "mkdir|out_link/d",
                                        "touch|chain1",
                                        "touch|out_link",
                                        "stat|etc_link/passwd",
                                        "stat|chain1",
                                        "stat|..",
                                        "stat|sub/../..",
                                        "lstat|chain1",
                                        "link|out_link/secret.txt|stolen",
                                        "link|etc_link/|stolen",
                                        "readlink|out_link/",
                                        "symlink|/etc/passwd|abs_link",
                                        "symlink|../outside|rel_out",
                                        "read|rel_out/secret.txt",
                                        "symlink|../file.txt|sub/up_ok",
                                        "read|sub/up_ok",
                                        "symlink|./../../outside|sub/up_out",
                                        "symlink|a/../../..|sub/up_out2",
                                        "rmdir|out_link/..",
                                        "stat|sub/.."}));
  BOOST_TEST(r.exit_code == 0);
  // 63 = PERM (escape refused), 32 = LOOP, 44 = NOENT, 28 = INVAL (NUL), 37 = NAMETOOLONG.
  BOOST_TEST(r.out == lines({
                          "read|file.txt: ok 'inside'",
                          "read|good_link: ok 'inside'",
                          "read|../outside/secret.txt: errno 63",
                          "read|sub/../../outside/secret.txt: errno 63",
                          "read|sub/../../../../../../etc/passwd: errno 63",
                          "read|/etc/passwd: errno 63",
                          "read|etc_link/passwd: errno 63",
                          "read|out_link/secret.txt: errno 63",
                          "read|chain1: errno 63",
                          "readnf|good_link: errno 32",
                          "read|loop1: errno 32",
                          "read|dangling: errno 44",
                          "readnul: errno 28",
                          "longname 300: errno 37",
                          "longpath 5000: errno 37",
                          "write|../outside/new.txt: errno 63",
                          "write|out_link/secret.txt: errno 63",
                          "write|chain1: errno 63",
                          "append|chain1: errno 63",
                          "truncate|chain1: errno 63",
                          "unlink|out_link/secret.txt: errno 63",
                          "rename|file.txt|../outside/moved: errno 63",
                          "rename|out_link/secret.txt|stolen: errno 63",
                          "mkdir|../outside/d: errno 63",
                          "mkdir|out_link/d: errno 63",
                          "touch|chain1: errno 63",
                          "touch|out_link: errno 63",
                          "stat|etc_link/passwd: errno 63",
                          "stat|chain1: errno 63",
                          "stat|..: errno 63",
                          "stat|sub/../..: errno 63",
                          "lstat|chain1: ok type=7 size=6",
                          "link|out_link/secret.txt|stolen: errno 63",
                          "link|etc_link/|stolen: errno 63",
                          "readlink|out_link/: errno 63",
                          "symlink|/etc/passwd|abs_link: errno 63",
                          // A link that climbs above the preopen is refused (not left for host readers).
                          "symlink|../outside|rel_out: errno 63",
                          "read|rel_out/secret.txt: errno 44",
                          "symlink|../file.txt|sub/up_ok: ok",
                          "read|sub/up_ok: ok 'inside'",
                          "symlink|./../../outside|sub/up_out: errno 63",
                          "symlink|a/../../..|sub/up_out2: errno 63",
                          "rmdir|out_link/..: errno 63",
                          "stat|sub/..: ok type=3 size=4096",
                      }));
  BOOST_TEST(snapshot(j.secret) == before);
  BOOST_TEST(listing(j.outside) == outside_before);
  BOOST_TEST(read_file(j.jail + "/file.txt") == "inside");
  BOOST_TEST(access((j.jail + "/stolen").c_str(), F_OK) != 0);
  BOOST_TEST(access((j.jail + "/abs_link").c_str(), F_OK) != 0);
}

BOOST_AUTO_TEST_CASE(read_only_preopen_refuses_every_mutation) {
  Jail j;
  Snapshot file_before = snapshot(j.jail + "/file.txt");
  std::set<std::string> jail_before = listing(j.jail), sub_before = listing(j.jail + "/sub");
  auto r = run(probe(
      {j.jail + "::/data:ro"},
      {"read|file.txt", "write|file.txt", "write|new.txt", "append|file.txt", "truncate|file.txt",
       "mkdir|newdir", "rmdir|sub", "unlink|file.txt", "rename|file.txt|renamed", "symlink|file.txt|newlink",
       "link|file.txt|hardlink", "touch|file.txt", "ltouch|good_link", "stat|file.txt"}));
  BOOST_TEST(r.exit_code == 0);
  // 69 = ROFS for every mutation; reading still works.
  BOOST_TEST(r.out == lines({
                          "read|file.txt: ok 'inside'",
                          "write|file.txt: errno 69",
                          "write|new.txt: errno 69",
                          "append|file.txt: errno 69",
                          "truncate|file.txt: errno 69",
                          "mkdir|newdir: errno 69",
                          "rmdir|sub: errno 69",
                          "unlink|file.txt: errno 69",
                          "rename|file.txt|renamed: errno 69",
                          "symlink|file.txt|newlink: errno 69",
                          "link|file.txt|hardlink: errno 69",
                          "touch|file.txt: errno 69",
                          "ltouch|good_link: errno 69",
                          "stat|file.txt: ok type=4 size=6",
                      }));
  BOOST_TEST(snapshot(j.jail + "/file.txt") == file_before);
  BOOST_TEST(listing(j.jail) == jail_before);
  BOOST_TEST(listing(j.jail + "/sub") == sub_before);
}

BOOST_AUTO_TEST_CASE(several_preopens_each_with_its_own_mode) {
  std::string a = wjt::temp_dir(), b = wjt::temp_dir();
  wjt::write_file(a + "/a.txt", "from a");
  wjt::write_file(b + "/b.txt", "from b");
  auto r = run(
      probe({a + "::/a", b + "::/b:ro"}, {"preopen|/a", "read|a.txt", "read|b.txt", "write|new.txt",
                                          "preopen|/b", "read|b.txt", "write|new.txt", "read|../a/a.txt"}));
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == lines({
                          "preopen|/a: fd 3",
                          "read|a.txt: ok 'from a'",
                          "read|b.txt: errno 44",
                          "write|new.txt: ok",
                          "preopen|/b: fd 4",
                          "read|b.txt: ok 'from b'",
                          "write|new.txt: errno 69",
                          "read|../a/a.txt: errno 63",
                      }));
  BOOST_TEST(read_file(a + "/new.txt") == "pwned");
  BOOST_TEST(access((b + "/new.txt").c_str(), F_OK) != 0);
}

BOOST_AUTO_TEST_CASE(stdin_is_empty) {
  auto r = run(probe({}, {"stdin"}));
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "stdin: ok 0 bytes\n");
}

BOOST_AUTO_TEST_CASE(readdir_of_10000_entries_resumes_by_cookie) {
  std::string d = wjt::temp_dir();
  for (int i = 0; i < 10000; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "/f%05d", i);
    wjt::write_file(d + name, "");
  }
  // 4096 bytes hold ~136 entries: ~74 calls, most ending in a cut entry read again later.
  for (const char* bufsize : {"4096", "100", "65536"}) {
    auto r = run({binary(), "run", "--dir", d + "::/", guest("readdir_many"), bufsize, "10000"});
    BOOST_TEST(r.exit_code == 0);
    BOOST_TEST(r.out ==
               "entries=10002 dots=2 dups=0 missing=0 others=0 multiple_calls=yes\n"
               "tiny buffer: errno 0 used=10\n");
  }
}

BOOST_AUTO_TEST_CASE(iovec_counts_beyond_iov_max) {
  std::string d = wjt::temp_dir();
  std::string expected;
  for (int i = 0; i < 3000; ++i) expected += static_cast<char>('a' + i % 26);
  wjt::write_file(d + "/data.txt", expected);
  auto r = run({binary(), "run", "--dir", d + "::/", guest("iovecs"), "3000", "read"});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == expected);
  BOOST_TEST(r.err == "wrote 3000 bytes\nread 3000 bytes: " + expected + "\n");
}

BOOST_AUTO_TEST_CASE(out_of_bounds_pointers_get_efault) {
  std::string d = wjt::temp_dir();
  auto r = run({binary(), "run", "--dir", d + "::/", guest("bad_pointers")});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out ==
             "fd_write iovs: 21\n"
             "fd_write iov buffer: 21\n"
             "fd_write nwritten: 21\n"
             "fd_write iovs count: 21\n"
             "fd_read iovs: 21\n"
             "args_get: 21\n"
             "args_sizes_get: 21\n"
             "environ_get: 21\n"
             "random_get: 21\n"
             "clock_time_get: 21\n"
             "path_open path: 21\n"
             "path_open fd_out: 21\n"
             "fd_readdir buf: 21\n"
             "fd_readdir used: 21\n"
             "fd_filestat_get: 21\n"
             "path_filestat_get: 21\n"
             "path_readlink buf: 21\n"
             "poll_oneoff: 21\n"
             "fd_prestat_dir_name: 21\n"
             "still running\n");
  // The fd_out check comes before the file would have been created.
  BOOST_TEST(listing(d) == (std::set<std::string>{".", ".."}));
}

BOOST_AUTO_TEST_CASE(random_calls_only_return_errnos_and_stay_inside) {
  for (const char* seed : {"1", "2", "3", "4"}) {
    Jail j;
    Snapshot before = snapshot(j.secret);
    std::set<std::string> outside_before = listing(j.outside);
    auto r = run({binary(), "run", "--dir", j.jail + "::/", "--dir", j.jail + "/sub::/sub",
                  guest("wasi_fuzz"), seed, "20000"});
    BOOST_TEST_CONTEXT("seed " << seed) {
      BOOST_TEST(r.exit_code == 0);
      BOOST_TEST(r.out == "done (some calls succeeded)\n");
      BOOST_TEST(snapshot(j.secret) == before);
      BOOST_TEST(listing(j.outside) == outside_before);
    }
  }
}

BOOST_AUTO_TEST_CASE(libc_file_handling_works_on_a_preopen) {
  std::string d = wjt::temp_dir();
  auto r = run({binary(), "run", "--dir", d + "::/data", guest("libc_fs")});
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out ==
             "read 29 bytes:\nline one\nline two\nline three\n"
             "mkdir: 0\n"
             "mkdir again: -1 File exists\n"
             "rename: 0\n"
             "stat: 0 size=29 regular=1\n"
             "symlink: 0\n"
             "readlink: 11 renamed.txt\n"
             "lstat is link: 1\n"
             "lseek end: 29\n"
             "ftruncate: 0\n"
             "pwrite: 4\n"
             "through link: LINE\n"
             "chdir: 0\n"
             "access relative: 0\n"
             "readdir: . .. link renamed.txt\n"
             // No preopen holds /etc: wasi-libc refuses before asking the host.
             "open outside: -1 Capabilities insufficient\n"
             // "/data/.." reaches the host, which refuses to resolve above the preopen.
             "open dotdot: -1 Operation not permitted\n"
             "rmdir nonempty: -1 Directory not empty\n"
             "unlink link: 0\n"
             "unlink file: 0\n"
             "rmdir: 0\n"
             "stat gone: -1 No such file or directory\n");
  BOOST_TEST(listing(d) == (std::set<std::string>{".", ".."}));
}
