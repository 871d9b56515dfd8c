// The guest's stdin: `run` streams its own stdin (pipe, file, empty, closed; a guest that
// never reads, one that reads after the host closed it); a job spec's `stdin` for exec.
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "tests/testlib.h"

namespace fs = std::filesystem;
using nlohmann::json;
using wjt::binary;
using wjt::guest;
using wjt::TempDir;

namespace {

// A pipe whose write end a thread fills with `data` and then closes.
struct Feeder {
  int read_fd = -1;
  std::thread t;
  explicit Feeder(std::string data) {
    int p[2];
    BOOST_REQUIRE(pipe2(p, O_CLOEXEC) == 0);
    read_fd = p[0];
    t = std::thread([w = p[1], data = std::move(data)] {
      signal(SIGPIPE, SIG_IGN);
      for (size_t off = 0; off < data.size();) {
        ssize_t n = write(w, data.data() + off, data.size() - off);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      close(w);
    });
  }
  ~Feeder() {
    t.join();
    close(read_fd);
  }
};

wjt::ProcResult run_reader(const std::vector<std::string>& args, int stdin_fd) {
  std::vector<std::string> argv = {binary(), "run", guest("stdin_reader")};
  argv.insert(argv.end(), args.begin(), args.end());
  return wjt::run_with_stdin(argv, stdin_fd);
}

json exec_job(const TempDir& d, const std::string& job, int* code = nullptr) {
  wjt::write_file(d.path + "/job.yaml", job);
  auto r = wjt::run({binary(), "exec", d.path + "/job.yaml"});
  if (code) *code = r.exit_code;
  json j = json::parse(r.out, nullptr, false);
  BOOST_REQUIRE_MESSAGE(!j.is_discarded(), "stdout is not JSON: " + r.out + r.err);
  return j;
}

std::string reader_job(const std::string& mode, const std::string& stdin_yaml) {
  return "entry_module: {source_path: '" + guest("stdin_reader") + "'}\nparameters: [" + mode + "]\n" + stdin_yaml;
}

}  // namespace

BOOST_AUTO_TEST_CASE(run_reads_a_pipe_to_its_end) {
  Feeder f("ab\ncd\n");
  auto r = run_reader({"upper"}, f.read_fd);
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "AB\nCD\nbytes=6 read=0\n");
}

BOOST_AUTO_TEST_CASE(run_reads_more_than_a_pipe_buffer) {
  std::string data(3 << 20, 'x');
  Feeder f(data);
  auto r = run_reader({"upper"}, f.read_fd);
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out.size() == data.size() + std::string("bytes=3145728 read=0\n").size());
  BOOST_TEST(r.out.substr(data.size()) == "bytes=3145728 read=0\n");
}

BOOST_AUTO_TEST_CASE(run_reads_a_file) {
  TempDir d;
  std::string data;
  for (int i = 0; i < 20000; ++i) data += "line " + std::to_string(i) + "\n";
  wjt::write_file(d.path + "/in.txt", data);
  int fd = open((d.path + "/in.txt").c_str(), O_RDONLY | O_CLOEXEC);
  BOOST_REQUIRE(fd >= 0);
  auto r = run_reader({"upper"}, fd);
  close(fd);
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out.substr(data.size()) == "bytes=" + std::to_string(data.size()) + " read=0\n");
  BOOST_TEST(r.out.substr(0, 12) == "LINE 0\nLINE ");
}

BOOST_AUTO_TEST_CASE(empty_and_closed_stdin_read_as_end_of_file) {
  auto r = run_reader({"upper"}, -1);  // /dev/null
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "bytes=0 read=0\n");
  r = run_reader({"upper"}, -2);  // closed
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "bytes=0 read=0\n");
  BOOST_TEST(r.err == "");
}

BOOST_AUTO_TEST_CASE(a_guest_that_never_reads_does_not_block_the_host) {
  // Our end stays open and never gets data: the job still ends as soon as the guest does
  // (run_with_stdin would kill a wasmjail that hung, and the exit code would say so).
  int p[2];
  BOOST_REQUIRE(pipe2(p, O_CLOEXEC) == 0);
  auto r = run_reader({"never"}, p[0]);
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "done\n");
  // Nor does a full pipe: more than its buffer waiting, never read.
  signal(SIGPIPE, SIG_IGN);
  fcntl(p[1], F_SETFL, O_NONBLOCK);
  std::string chunk(65536, 'z');
  while (write(p[1], chunk.data(), chunk.size()) > 0) {
  }
  r = run_reader({"never"}, p[0]);
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "done\n");
  close(p[0]);
  close(p[1]);
}

BOOST_AUTO_TEST_CASE(a_guest_reading_after_the_host_closed_stdin_gets_the_data_then_eof) {
  Feeder f("ab");
  // The feeder has written and closed long before the guest's first read.
  auto r = run_reader({"late", "400"}, f.read_fd);
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(r.out == "ABbytes=2 read=0\n");
}

BOOST_AUTO_TEST_CASE(data_reaches_the_guest_as_it_arrives) {
  int in[2], out[2];
  BOOST_REQUIRE(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    execl(binary().c_str(), binary().c_str(), "run", guest("stdin_reader").c_str(), "lines", nullptr);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  auto read_until = [&](const std::string& want, std::string* got) {
    char buf[256];
    while (got->find(want) == std::string::npos) {
      pollfd p{out[0], POLLIN, 0};
      if (poll(&p, 1, 60000) != 1) return false;
      ssize_t n = read(out[0], buf, sizeof buf);
      if (n <= 0) return false;
      got->append(buf, static_cast<size_t>(n));
    }
    return true;
  };
  std::string got;
  BOOST_REQUIRE(write(in[1], "one\n", 4) == 4);
  // The answer to the first line comes while our end is still open.
  BOOST_TEST(read_until("line: one\n", &got));
  BOOST_REQUIRE(write(in[1], "two\n", 4) == 4);
  BOOST_TEST(read_until("line: two\n", &got));
  close(in[1]);
  BOOST_TEST(read_until("eof\n", &got));
  BOOST_TEST(got == "line: one\nline: two\neof\n");
  close(out[0]);
  int status = 0;
  BOOST_TEST(waitpid(pid, &status, 0) == pid);
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 0);
}

BOOST_AUTO_TEST_CASE(poll_oneoff_and_fdstat_on_stdin) {
  {
    Feeder f("q");
    auto r = run_reader({"poll"}, f.read_fd);
    BOOST_TEST(r.out == "ready=1 errno=0 userdata=7\nQbytes=1 read=0\n");
  }
  {
    Feeder f("q");
    auto r = run_reader({"stat"}, f.read_fd);
    BOOST_TEST(r.out == "filetype=0 errno=0\nQbytes=1 read=0\n");  // a pipe: unknown, as wasmtime
  }
  TempDir d;
  wjt::write_file(d.path + "/f", "file");
  int fd = open((d.path + "/f").c_str(), O_RDONLY | O_CLOEXEC);
  auto r = run_reader({"stat"}, fd);
  close(fd);
  // run streams every stdin, a file too (as wasmtime): the guest sees a pipe.
  BOOST_TEST(r.out == "filetype=0 errno=0\nFILEbytes=4 read=0\n");
}

BOOST_AUTO_TEST_CASE(exec_stdin_from_text_base64_and_a_file) {
  TempDir d;
  json j = exec_job(d, reader_job("upper", "stdin: \"some text\"\n"));
  BOOST_TEST(j["status"] == "ok");
  BOOST_TEST(j["stdout"] == "SOME TEXTbytes=9 read=0\n");
  j = exec_job(d, reader_job("upper", "stdin: {base64: \"AAFiYw==\"}\n"));
  BOOST_TEST(j["stdout"] == std::string("\0\1BCbytes=4 read=0\n", 19));
  wjt::write_file(d.path + "/in.txt", "from file\n");
  j = exec_job(d, reader_job("stat", "stdin: {source_path: in.txt}\n"));
  BOOST_TEST(j["stdout"] == "filetype=4 errno=0\nFROM FILE\nbytes=10 read=0\n");
  j = exec_job(d, reader_job("poll", "stdin: {text: \"x\"}\n"));
  BOOST_TEST(j["stdout"] == "ready=1 errno=0 userdata=7\nXbytes=1 read=0\n");
  // No stdin: end of file.
  j = exec_job(d, reader_job("upper", ""));
  BOOST_TEST(j["stdout"] == "bytes=0 read=0\n");
}

BOOST_AUTO_TEST_CASE(exec_stdin_errors_name_the_place) {
  TempDir d;
  int code = 0;
  json j = exec_job(d, reader_job("upper", "stdin: {base64: \"a*b=\"}\n"), &code);
  BOOST_TEST(code == 1);
  BOOST_TEST(j["status"] == "invalid_job");
  BOOST_TEST(j["error"].get<std::string>().find("job.yaml:3:17: stdin.base64 is not valid base64") != std::string::npos);
  j = exec_job(d, reader_job("upper", "stdin: {text: a, base64: YQ==}\n"));
  BOOST_TEST(j["error"].get<std::string>().find("job.yaml:3:8: stdin: give exactly one of") != std::string::npos);
  j = exec_job(d, reader_job("upper", "stdin: [1, 2]\n"));
  BOOST_TEST(j["error"].get<std::string>().find("job.yaml:3:8: stdin must be text") != std::string::npos);
  // Over the limit (the job asks for less than the policy's stdin_bytes).
  j = exec_job(d, reader_job("upper", "stdin: hello\nlimits: {stdin_bytes: 4B}\n"));
  BOOST_TEST(j["status"] == "invalid_job");
  BOOST_TEST(j["error"].get<std::string>().find("job.yaml:3:8: stdin: 5 bytes exceed the stdin_bytes limit of 4 bytes") !=
             std::string::npos, j["error"]);
  wjt::write_file(d.path + "/big.txt", std::string(100, 'b'));
  j = exec_job(d, reader_job("upper", "stdin: {source_path: big.txt}\nlimits: {stdin_bytes: 10B}\n"));
  BOOST_TEST(j["status"] == "invalid_job");
  BOOST_TEST(j["error"].get<std::string>().find("stdin: ") == 0, j["error"]);
  j = exec_job(d, reader_job("upper", "stdin: {source_path: missing.txt}\n"));
  BOOST_TEST(j["status"] == "invalid_job");
  BOOST_TEST(j["error"].get<std::string>().find("stdin: ") == 0, j["error"]);
  // The policy's key is validated like every limit.
  wjt::write_file(d.path + "/p.yaml", "extends: default\nlimits:\n  stdin_bytes: 12 parsecs\n");
  auto r = wjt::run({binary(), "policy", "check", d.path + "/p.yaml"});
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST((r.out + r.err).find("p.yaml:3:16: limits.stdin_bytes") != std::string::npos, r.out + r.err);
}
