#include "supervisor/zygote.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>

#include "supervisor/wire.h"
#include "v8host/engine.h"
#include "v8host/outcome.h"

namespace wj {
namespace {

// ---- the setup's encoding: little-endian, length-prefixed; read with bounds checks ----

class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) { out_.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void u64(uint64_t v) { out_.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void f64(double v) { out_.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void bytes(const void* p, size_t n) {
    u64(n);
    out_.append(static_cast<const char*>(p), n);
  }
  void str(const std::string& s) { bytes(s.data(), s.size()); }
  void blob(const std::vector<uint8_t>& b) { bytes(b.data(), b.size()); }
  void strs(const std::vector<std::string>& v) {
    u32(static_cast<uint32_t>(v.size()));
    for (const auto& s : v) str(s);
  }
  void opt(const std::optional<uint64_t>& v) {
    u8(v ? 1 : 0);
    if (v) u64(*v);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return ok_ && pos_ == in_.size(); }
  uint8_t u8() { return scalar<uint8_t>(); }
  uint32_t u32() { return scalar<uint32_t>(); }
  uint64_t u64() { return scalar<uint64_t>(); }
  double f64() { return scalar<double>(); }
  std::string str() {
    uint64_t n = u64();
    if (!need(n)) return {};
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  std::vector<uint8_t> blob() {
    uint64_t n = u64();
    if (!need(n)) return {};
    std::vector<uint8_t> b(in_.begin() + static_cast<long>(pos_), in_.begin() + static_cast<long>(pos_ + n));
    pos_ += n;
    return b;
  }
  std::vector<std::string> strs() {
    std::vector<std::string> v;
    uint32_t n = count();
    for (uint32_t i = 0; i < n && ok_; ++i) v.push_back(str());
    return v;
  }
  std::optional<uint64_t> opt() {
    if (!u8()) return std::nullopt;
    return u64();
  }
  // A count of items that each take at least one byte: bounded by what is left.
  uint32_t count() {
    uint32_t n = u32();
    if (n > in_.size() - std::min(pos_, in_.size())) ok_ = false;
    return ok_ ? n : 0;
  }

 private:
  template <typename T>
  T scalar() {
    T v{};
    if (!need(sizeof v)) return v;
    std::memcpy(&v, in_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  bool need(uint64_t n) {
    if (!ok_ || n > in_.size() - pos_) return ok_ = false;
    return true;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

constexpr uint32_t kSetupMagic = 0x575a5931;  // "WZY1"
constexpr uint32_t kWarmMagic = 0x575a5731;   // "WZW1"

void put_seccomp(Writer& w, const sandbox::SeccompSpec& sc) {
  w.u8(static_cast<uint8_t>(sc.default_action));
  w.u32(static_cast<uint32_t>(sc.default_errno));
  w.u32(static_cast<uint32_t>(sc.allow.size()));
  for (const auto& r : sc.allow) {
    w.str(r.name);
    w.u32(static_cast<uint32_t>(r.conditions.size()));
    for (const auto& c : r.conditions)
      w.u32(c.index), w.u8(static_cast<uint8_t>(c.op)), w.u64(c.value), w.u64(c.mask);
  }
  w.strs(sc.kill);
  w.u32(static_cast<uint32_t>(sc.errno_rules.size()));
  for (const auto& r : sc.errno_rules) w.str(r.name), w.u32(static_cast<uint32_t>(r.err));
}

void get_seccomp(Reader& r, sandbox::SeccompSpec* sc, bool* ok) {
  uint8_t action = r.u8();
  if (action > static_cast<uint8_t>(sandbox::SeccompSpec::DefaultAction::kLog)) *ok = false;
  sc->default_action = static_cast<sandbox::SeccompSpec::DefaultAction>(action);
  sc->default_errno = static_cast<int>(r.u32());
  for (uint32_t i = 0, n = r.count(); i < n && r.ok(); ++i) {
    sandbox::SyscallRule rule;
    rule.name = r.str();
    for (uint32_t k = 0, m = r.count(); k < m && r.ok(); ++k) {
      sandbox::ArgCondition c;
      c.index = r.u32();
      uint8_t op = r.u8();
      if (op > static_cast<uint8_t>(sandbox::ArgCondition::Op::kMaskedEq)) *ok = false;
      c.op = static_cast<sandbox::ArgCondition::Op>(op);
      c.value = r.u64();
      c.mask = r.u64();
      rule.conditions.push_back(c);
    }
    sc->allow.push_back(std::move(rule));
  }
  sc->kill = r.strs();
  for (uint32_t i = 0, n = r.count(); i < n && r.ok(); ++i) {
    sandbox::ErrnoRule e;
    e.name = r.str();
    e.err = static_cast<int>(r.u32());
    sc->errno_rules.push_back(std::move(e));
  }
}

// The fork server's compiled filters, one per distinct seccomp section (policies are few).
// Compiled for pid 1: a job in its own pid namespace. A job without one builds its own.
const sandbox::SeccompProgram* precompiled_filter(const sandbox::SandboxSpec& sb) {
  static std::map<std::string, sandbox::SeccompProgram> cache;
  if (sb.seccomp.mode == sandbox::Mode::kOff || sb.pid_ns == sandbox::Mode::kOff) return nullptr;
  Writer w;
  put_seccomp(w, sb.seccomp);
  std::string key = w.take();
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() >= 64) cache.clear();
    sandbox::SeccompProgram prog;
    // A spec that does not compile (an unknown syscall name) is left to the child, which
    // reports the error as the job's setup failure.
    if (sandbox::compile_seccomp(sb.seccomp, 1, &prog)) return nullptr;
    it = cache.emplace(std::move(key), std::move(prog)).first;
  }
  return &it->second;
}

sandbox::Mode mode_from(uint8_t v, bool* ok) {
  if (v > static_cast<uint8_t>(sandbox::Mode::kOff)) *ok = false;
  return static_cast<sandbox::Mode>(v);
}

sandbox::NetNsKind net_kind_from(uint8_t v, bool* ok) {
  if (v > static_cast<uint8_t>(sandbox::NetNsKind::kSharedEmpty)) *ok = false;
  return static_cast<sandbox::NetNsKind>(v);
}

// A shared_empty job needs this process in the shared empty network namespace, made at the
// first such job (the fork server is single-threaded). If it cannot be made, the job gets
// its own namespace (clone_job_process), which is stronger; said once on stderr.
void enter_shared_net_if_asked(const sandbox::SandboxSpec& sb) {
  if (sb.net_ns_kind != sandbox::NetNsKind::kSharedEmpty || sb.net_ns == sandbox::Mode::kOff) return;
  if (sandbox::in_shared_net_namespace()) return;
  static bool said = false;
  if (auto e = sandbox::enter_shared_net_namespace(); e && !said) {
    said = true;
    std::fprintf(stderr,
                 "wasmjail-zygote: no shared network namespace (%s); shared_empty jobs get their own\n",
                 e->c_str());
  }
}

// ---- the request and the reply on the socket --------------------------------------------

// SCM_RIGHTS carries at most 253 fds; a spawn request has the spec memfd, the job memfd,
// 3 pipes, the preopens and the guest's stdin.
constexpr size_t kMaxPreopens = Zygote::kMaxPreopens;
constexpr size_t kMaxFds = kMaxPreopens + 6;
static_assert(kMaxFds <= 253);
constexpr uint32_t kSpawn = 1, kFill = 2;

struct RequestHead {
  uint32_t magic;
  uint32_t seq;        // echoed in the reply
  uint32_t kind;       // kSpawn or kFill
  uint32_t preopens;   // spawn: fds after the memfds and the 3 pipes
  uint32_t has_stdin;  // spawn: the guest's stdin is the last fd
};

struct ReplyHead {
  uint32_t seq;
  int32_t pid;
  int32_t err;
  uint32_t applied;
  uint32_t skipped;
};
constexpr size_t kMaxReply = 4096;

// A job sent to a warm pooled process: the setup memfd, 3 pipes, the preopens, its stdin.
struct JobHead {
  uint32_t magic;
  uint32_t preopens;
  uint32_t has_stdin;
};

// Sends one message; false with errno set on failure (nothing was sent then).
bool send_with_fds(int sock, const void* data, size_t len, const std::vector<int>& fds) {
  iovec iov{const_cast<void*>(data), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> ctrl(CMSG_SPACE(sizeof(int) * fds.size()));
  if (!fds.empty()) {
    msg.msg_control = ctrl.data();
    msg.msg_controllen = ctrl.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    return n == static_cast<ssize_t>(len);
  }
}

// Receives one message; fds arrive close-on-exec. Returns the byte count (0 at EOF, -1 error).
ssize_t recv_with_fds(int sock, void* buf, size_t len, std::vector<int>* fds, int flags = 0) {
  iovec iov{buf, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> ctrl(CMSG_SPACE(sizeof(int) * (kMaxFds + 3)));  // room to see excess
  msg.msg_control = ctrl.data();
  msg.msg_controllen = ctrl.size();
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
  while (n < 0 && errno == EINTR);
  if (n < 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* p = CMSG_DATA(c);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, p + i * sizeof(int), sizeof fd);
      fds->push_back(fd);
    }
  }
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) return -1;
  return n;
}

// The setup's bytes, mapped read-only (no copy; unmapped by the destructor).
class MappedSetup {
 public:
  std::optional<std::string> map(int fd) {
    struct stat st {};
    if (fstat(fd, &st) != 0) return std::string("fstat: ") + std::strerror(errno);
    if (st.st_size <= 0) return std::string("empty");
    void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) return std::string("mmap: ") + std::strerror(errno);
    data_ = static_cast<const char*>(p);
    size_ = static_cast<size_t>(st.st_size);
    return std::nullopt;
  }
  std::string_view view() const { return {data_, size_}; }
  ~MappedSetup() {
    if (data_) munmap(const_cast<char*>(data_), size_);
  }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
};

// Writes the whole string to a new memfd; -1 on failure.
int memfd_with(const std::string& data, const char* name) {
  int mfd = memfd_create(name, MFD_CLOEXEC);
  if (mfd < 0) return -1;
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(mfd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(mfd);
      return -1;
    }
    off += static_cast<size_t>(n);
  }
  return mfd;
}

int count_threads() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
  return -1;
}

// A job process that cannot start its job reports why on the record pipe, as child_main
// would (the supervisor then ends the job setup_error).
[[noreturn]] void refuse_job(int record_fd, const std::string& why) {
  RunOutcome o;
  o.kind = OutcomeKind::kSetupError;
  o.message = why;
  std::string rec = wire::encode_outcome(o);
  (void)!write(record_fd, rec.data(), rec.size());
  _exit(0);
}

// Decodes the job's setup from its memfd, in the job process (never in the zygote).
DecodedSetup* decode_job(int memfd, size_t preopens, int record_fd) {
  auto* d = new DecodedSetup;
  std::optional<std::string> e;
  {
    MappedSetup data;
    e = data.map(memfd);
    if (!e) e = decode_child_setup(data.view(), d);
  }
  close(memfd);
  if (e) refuse_job(record_fd, "job setup: " + *e);
  if (d->job.dirs.size() != preopens) refuse_job(record_fd, "job setup: preopen count mismatch");
  return d;
}

// Default signal dispositions for a job process (see child_main); V8's SIGSEGV handler stays.
void reset_signals() {
  struct sigaction v8_segv {};
  sigaction(SIGSEGV, nullptr, &v8_segv);
  for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);
  if (v8_preinitialized()) sigaction(SIGSEGV, &v8_segv, nullptr);
  signal(SIGPIPE, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

// Warm pooled processes prepare at this nice value when the supervisor can take it back
// (WarmSpec::lower_priority), so refills do not take CPU from running jobs.
constexpr int kWarmNice = 10;

// A warm pooled process: prepares everything that does not depend on a job, waits for
// exactly one job on `channel`, then runs it. Never returns.
[[noreturn]] void warm_main(const WarmSpec& spec, sandbox::CloneResult clone, int channel,
                            const sandbox::SeccompProgram* prog) {
  prctl(PR_SET_NAME, "wasmjail-warm");
  reset_signals();
  sandbox::LockdownSpec early;
  early.supervisor_pid = spec.supervisor_pid;
  early.supervisor_pidfd = clone.parent_pidfd;
  early.keep_fds = {2, channel};
  early.clone = clone;
  if (sandbox::prepare_warm(early)) _exit(1);  // the supervisor sees it gone, and drops it
  clone.parent_pidfd = -1;                      // used (and closed) by prepare_warm
  if (spec.lower_priority) setpriority(PRIO_PROCESS, 0, kWarmNice);
  set_entropy_source();
  prewarm_isolate(spec.v8_flags, spec.memory_bytes);
  // Ready (what the pool prefers). The job may already be waiting in the channel, sent while
  // this process was preparing and followed by the supervisor's close: then this fails, and
  // the job is read all the same.
  char ready = 'R';
  (void)send_with_fds(channel, &ready, 1, {});

  JobHead head{};
  std::vector<int> fds;
  ssize_t n = recv_with_fds(channel, &head, sizeof head, &fds);
  // The supervisor closed its end with our ready byte unread: the kernel reports that
  // (ECONNRESET) once, before the job message still queued.
  if (n < 0 && errno == ECONNRESET) n = recv_with_fds(channel, &head, sizeof head, &fds);
  if (n <= 0) _exit(0);  // the supervisor dropped this process
  if (n != static_cast<ssize_t>(sizeof head) || head.magic != kSetupMagic || head.preopens > kMaxPreopens ||
      head.has_stdin > 1 || fds.size() != 4 + static_cast<size_t>(head.preopens) + head.has_stdin) {
    if (fds.size() >= 4) refuse_job(fds[3], "warm job process: malformed job message");
    _exit(0);
  }
  close(channel);
  DecodedSetup* d = decode_job(fds[0], head.preopens, fds[3]);
  ChildSetup& s = d->setup;
  // The job must be what this process was prepared for (the supervisor's pool key).
  WarmSpec got = warm_spec_of(s);
  got.supervisor_pid = spec.supervisor_pid;
  got.lower_priority = spec.lower_priority;
  if (encode_warm_spec(got) != encode_warm_spec(spec))
    refuse_job(fds[3], "warm job process: the job does not match the policy it was prepared for");
  s.stdout_w = fds[1];
  s.stderr_w = fds[2];
  s.record_w = fds[3];
  s.preopen_fds.assign(fds.begin() + 4, fds.begin() + 4 + head.preopens);
  s.stdin_fd = head.has_stdin ? fds.back() : -1;
  s.clone = clone;
  s.warm = true;
  s.seccomp_program = prog;
  child_main(s);
}

// The zygote's loop: one request, one clone, one reply. Never returns.
[[noreturn]] void zygote_main(int sock, pid_t supervisor) {
  // Live exactly as long as the supervisor: the death signal, and EOF on the socket.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != supervisor) _exit(0);
  prctl(PR_SET_NAME, "wasmjail-zygote");
  // The terminal's signals are the supervisor's to handle (serve drains its jobs first).
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  // Nothing of the supervisor's but stderr (for a fatal message) and the socket, as fd 3.
  if (sock != 3) {
    if (dup2(sock, 3) < 0) _exit(1);
    close(sock);
    sock = 3;
  }
  syscall(SYS_close_range, 4u, ~0u, 0u);
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull >= 0) {
    dup2(devnull, 0);
    dup2(devnull, 1);
    close(devnull);
  }
  const bool stall_for_tests = getenv("WASMJAIL_TEST_ZYGOTE_STALL") != nullptr;
  // V8 without a thread: the job children start their own workers after lock-down.
  preinitialize_v8();
  if (count_threads() != 1) {
    std::fprintf(stderr, "wasmjail-zygote: V8 started a thread during initialization; not serving\n");
    _exit(1);
  }
  // A ready byte: the supervisor knows V8 initialized.
  char ready = 'R';
  if (!send_with_fds(sock, &ready, 1, {})) _exit(0);

  for (;;) {
    RequestHead head{};
    std::vector<int> fds;
    ssize_t n = recv_with_fds(sock, &head, sizeof head, &fds);
    if (n == 0) _exit(0);  // the supervisor is gone
    // The job process waits for this pipe's byte (sent once the supervisor has the reply) and
    // exits at EOF: if we die before replying, no job process runs unknown to the supervisor.
    int go[2] = {-1, -1};
    auto reply = [&](const sandbox::CloneResult& r) {
      std::string out(sizeof(ReplyHead), '\0');
      ReplyHead h{head.seq, r.pid, r.err, r.applied, r.skipped};
      std::memcpy(out.data(), &h, sizeof h);
      out += r.error.substr(0, kMaxReply - sizeof h);
      for (int fd : fds) close(fd);
      if (go[0] >= 0) close(go[0]);
      // The go-ahead's write end goes to the supervisor, which puts the job in its cgroup
      // before writing the byte (sandbox/cgroup.h).
      std::vector<int> give;
      if (go[1] >= 0 && r.pid > 0) give.push_back(go[1]);
      if (!send_with_fds(sock, out.data(), out.size(), give)) _exit(0);  // go[1] closes with us
      if (go[1] >= 0) close(go[1]);
    };
    sandbox::CloneResult refused;
    refused.err = EINVAL;
    const size_t want = head.kind == kSpawn ? 5 + static_cast<size_t>(head.preopens) + head.has_stdin : 2;
    if (n != static_cast<ssize_t>(sizeof head) || head.magic != kSetupMagic || head.preopens > kMaxPreopens ||
        (head.kind != kSpawn && head.kind != kFill) || (head.kind == kFill && (head.preopens || head.has_stdin)) ||
        head.has_stdin > 1 || fds.size() != want) {
      refused.error = "fork server: malformed request";
      reply(refused);
      continue;
    }
    // Only the policy's part: the job's own data stays in its memfd, for the job process.
    WarmSpec spec;
    {
      MappedSetup data;
      std::optional<std::string> e = data.map(fds[0]);
      if (!e) e = decode_warm_spec(data.view(), &spec);
      if (e) {
        refused.error = "fork server: job setup: " + *e;
        reply(refused);
        continue;
      }
    }
    // A socket pair rather than a pipe: the supervisor writes the go-ahead with
    // MSG_NOSIGNAL, so a job process that died meanwhile costs it no SIGPIPE.
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) != 0) {
      refused.err = errno;
      refused.error = std::string("fork server: socketpair: ") + std::strerror(errno);
      go[0] = go[1] = -1;
      reply(refused);
      continue;
    }
    const sandbox::SeccompProgram* prog = precompiled_filter(spec.sandbox);
    enter_shared_net_if_asked(spec.sandbox);
    sandbox::CloneResult clone = sandbox::clone_job_process(spec.sandbox, CLONE_PARENT, supervisor);
    if (clone.pid == 0) {
      prctl(PR_SET_NAME, "wasmjail-job");  // not the fork server, from its first instant
      close(go[1]);
      // The supervisor sends the go-ahead once it has the reply (and, for a job, has put
      // the process in the job's cgroup); EOF instead means exit unrun.
      sandbox::wait_for_go_ahead(go[0]);
      close(fds[0]);
      if (head.kind == kFill) warm_main(spec, clone, fds[1], prog);
      DecodedSetup* d = decode_job(fds[1], head.preopens, fds[4]);
      ChildSetup& s = d->setup;
      s.stdout_w = fds[2];
      s.stderr_w = fds[3];
      s.record_w = fds[4];
      s.preopen_fds.assign(fds.begin() + 5, fds.begin() + 5 + head.preopens);
      s.stdin_fd = head.has_stdin ? fds.back() : -1;
      s.clone = clone;
      s.seccomp_program = prog;
      child_main(s);
    }
    // Tests only: a fork server that hangs after creating the job, before answering.
    if (stall_for_tests && clone.pid > 0) pause();
    reply(clone);
  }
}

}  // namespace

// ---- encoding ---------------------------------------------------------------------------

std::string encode_child_setup(const ChildSetup& s) {
  Writer w;
  w.u32(kSetupMagic);
  const Job& j = *s.job;
  w.str(j.module_path);
  w.u32(static_cast<uint32_t>(j.libraries.size()));
  for (const ModuleBlob& lib : j.libraries) {
    w.str(lib.name);
    w.strs(lib.aliases);
    w.blob(lib.bytes);
  }
  w.str(j.entry_point);
  w.strs(j.argv);
  w.u32(static_cast<uint32_t>(j.env.size()));
  for (const auto& [k, v] : j.env) w.str(k), w.str(v);
  w.u32(static_cast<uint32_t>(j.dirs.size()));
  for (const DirMount& d : j.dirs) w.str(d.host_path), w.str(d.guest_path), w.u8(d.read_only);
  w.blob(*s.module);
  w.u64(static_cast<uint64_t>(s.supervisor_pid));
  for (bool t : s.stdio_is_tty) w.u8(t);
  w.u64(s.wall_deadline_ns);
  w.f64(s.cpu_limit_ms);
  w.u64(s.memory_bytes);
  w.u64(s.wasm_memory_bytes);
  w.u64(s.output_bytes);
  w.u64(s.output_files);
  w.strs(*s.v8_flags);
  w.u8(s.cached_code != nullptr);
  if (s.cached_code) w.blob(*s.cached_code);
  w.u8(s.offer_code);
  w.u8(s.compile_only);
  w.u8(s.report_hot);
  {
    static const std::vector<uint32_t> kNone;
    const std::vector<uint32_t>& hot = s.hot_functions ? *s.hot_functions : kNone;
    w.u32(static_cast<uint32_t>(hot.size()));
    for (uint32_t f : hot) w.u32(f);
  }
  static const sandbox::SandboxSpec kDefaults;
  const sandbox::SandboxSpec& sb = s.sandbox ? *s.sandbox : kDefaults;
  for (sandbox::Mode m : {sb.user_ns, sb.pid_ns, sb.net_ns, sb.ipc_ns, sb.uts_ns, sb.mount_ns, sb.landlock, sb.filesystem,
                          sb.capabilities, sb.seccomp.mode})
    w.u8(static_cast<uint8_t>(m));
  w.u8(static_cast<uint8_t>(sb.net_ns_kind));
  put_seccomp(w, sb.seccomp);
  const auto& rl = sb.rlimits;
  for (const auto* o : {&rl.nofile, &rl.fsize, &rl.nproc, &rl.data, &rl.stack, &rl.cpu_seconds}) w.opt(*o);
  w.u32(static_cast<uint32_t>(sb.preopens.size()));
  for (const auto& p : sb.preopens) w.str(p.host_path), w.str(p.guest_path), w.u8(p.read_only);
  w.u32(sb.simulate_unavailable);
  return w.take();
}

std::optional<std::string> decode_child_setup(std::string_view data, DecodedSetup* out) {
  Reader r(data);
  if (r.u32() != kSetupMagic) return std::string("not a job setup");
  Job& j = out->job;
  j.module_path = r.str();
  for (uint32_t i = 0, n = r.count(); i < n && r.ok(); ++i) {
    ModuleBlob lib;
    lib.name = r.str();
    lib.aliases = r.strs();
    lib.bytes = r.blob();
    j.libraries.push_back(std::move(lib));
  }
  j.entry_point = r.str();
  j.argv = r.strs();
  for (uint32_t i = 0, n = r.count(); i < n && r.ok(); ++i) {
    std::string k = r.str();
    j.env.emplace_back(std::move(k), r.str());
  }
  for (uint32_t i = 0, n = r.count(); i < n && r.ok(); ++i) {
    DirMount d;
    d.host_path = r.str();
    d.guest_path = r.str();
    d.read_only = r.u8() != 0;
    j.dirs.push_back(std::move(d));
  }
  out->module = r.blob();
  ChildSetup& s = out->setup;
  s.job = &out->job;
  s.module = &out->module;
  s.supervisor_pid = static_cast<pid_t>(r.u64());
  s.stdout_w = s.stderr_w = s.record_w = -1;
  for (bool& t : s.stdio_is_tty) t = r.u8() != 0;
  s.wall_deadline_ns = r.u64();
  s.cpu_limit_ms = r.f64();
  s.memory_bytes = r.u64();
  s.wasm_memory_bytes = r.u64();
  s.output_bytes = r.u64();
  s.output_files = r.u64();
  out->v8_flags = r.strs();
  s.v8_flags = &out->v8_flags;
  out->has_cached_code = r.u8() != 0;
  if (out->has_cached_code) out->cached_code = r.blob();
  s.cached_code = out->has_cached_code ? &out->cached_code : nullptr;
  s.offer_code = r.u8() != 0;
  s.compile_only = r.u8() != 0;
  s.report_hot = r.u8() != 0;
  for (uint32_t i = 0, n = r.count(); i < n && r.ok(); ++i) out->hot_functions.push_back(r.u32());
  s.hot_functions = &out->hot_functions;
  sandbox::SandboxSpec& sb = out->sandbox;
  bool modes_ok = true;
  for (sandbox::Mode* m : {&sb.user_ns, &sb.pid_ns, &sb.net_ns, &sb.ipc_ns, &sb.uts_ns, &sb.mount_ns,
                           &sb.landlock, &sb.filesystem, &sb.capabilities, &sb.seccomp.mode})
    *m = mode_from(r.u8(), &modes_ok);
  sb.net_ns_kind = net_kind_from(r.u8(), &modes_ok);
  get_seccomp(r, &sb.seccomp, &modes_ok);
  auto& rl = sb.rlimits;
  for (auto* o : {&rl.nofile, &rl.fsize, &rl.nproc, &rl.data, &rl.stack, &rl.cpu_seconds}) *o = r.opt();
  sb.preopens.clear();
  for (uint32_t i = 0, n = r.count(); i < n && r.ok(); ++i) {
    sandbox::PreopenMount p;
    p.host_path = r.str();
    p.guest_path = r.str();
    p.read_only = r.u8() != 0;
    sb.preopens.push_back(std::move(p));
  }
  sb.simulate_unavailable = r.u32();
  s.sandbox = &out->sandbox;
  if (r.ok() && sb.preopens.size() != j.dirs.size())
    return std::string("preopens and directories differ in number");
  if (!r.done()) return std::string(r.ok() ? "trailing bytes" : "truncated");
  if (!modes_ok) return std::string("a mode out of range");
  return std::nullopt;
}

WarmSpec warm_spec_of(const ChildSetup& s) {
  WarmSpec w;
  if (s.sandbox) w.sandbox = *s.sandbox;
  w.sandbox.preopens.clear();
  if (s.v8_flags) w.v8_flags = *s.v8_flags;
  w.memory_bytes = s.memory_bytes;
  w.supervisor_pid = s.supervisor_pid;
  return w;
}

std::string encode_warm_spec(const WarmSpec& ws) {
  Writer w;
  w.u32(kWarmMagic);
  const sandbox::SandboxSpec& sb = ws.sandbox;
  for (sandbox::Mode m : {sb.user_ns, sb.pid_ns, sb.net_ns, sb.ipc_ns, sb.uts_ns, sb.mount_ns, sb.landlock,
                          sb.capabilities, sb.seccomp.mode})
    w.u8(static_cast<uint8_t>(m));
  w.u8(static_cast<uint8_t>(sb.net_ns_kind));
  put_seccomp(w, sb.seccomp);
  w.u32(sb.simulate_unavailable);
  w.u64(static_cast<uint64_t>(ws.supervisor_pid));
  w.strs(ws.v8_flags);
  w.u64(ws.memory_bytes);
  w.u8(ws.lower_priority);
  return w.take();
}

std::optional<std::string> decode_warm_spec(std::string_view data, WarmSpec* out) {
  Reader r(data);
  if (r.u32() != kWarmMagic) return std::string("not a warm spec");
  sandbox::SandboxSpec& sb = out->sandbox;
  bool ok = true;
  for (sandbox::Mode* m : {&sb.user_ns, &sb.pid_ns, &sb.net_ns, &sb.ipc_ns, &sb.uts_ns, &sb.mount_ns,
                           &sb.landlock, &sb.capabilities, &sb.seccomp.mode})
    *m = mode_from(r.u8(), &ok);
  sb.net_ns_kind = net_kind_from(r.u8(), &ok);
  get_seccomp(r, &sb.seccomp, &ok);
  sb.simulate_unavailable = r.u32();
  out->supervisor_pid = static_cast<pid_t>(r.u64());
  out->v8_flags = r.strs();
  out->memory_bytes = r.u64();
  out->lower_priority = r.u8() != 0;
  if (!r.done()) return std::string(r.ok() ? "trailing bytes" : "truncated");
  if (!ok) return std::string("a mode out of range");
  return std::nullopt;
}

// ---- the supervisor's side --------------------------------------------------------------

namespace {
std::function<void(int)> g_stop_hook;
Zygote* g_zygote = nullptr;
bool g_strays_possible = false;
}  // namespace

bool Zygote::strays_possible() { return g_strays_possible; }
void Zygote::set_strays_possible(bool v) { g_strays_possible = v; }

namespace {
bool g_helper_capable = false;  // main() calls run_helper_if_requested
bool g_required = false;
constexpr const char* kHelperEnv = "WASMJAIL_ZYGOTE_HELPER";
}  // namespace

void Zygote::run_helper_if_requested() {
  g_helper_capable = true;
  const char* v = getenv(kHelperEnv);
  if (!v) return;
  pid_t supervisor = static_cast<pid_t>(std::atol(v));
  unsetenv(kHelperEnv);
  if (supervisor <= 0) _exit(2);
  zygote_main(3, supervisor);
}

void Zygote::set_required(bool v) { g_required = v; }
bool Zygote::required() { return g_required; }

bool Zygote::start_clean() {
  if (g_zygote) return true;
  if (!g_helper_capable) return false;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return false;
  // The helper gets the socket as fd 3 (dup2 clears close-on-exec), so it must not be 3 here.
  int child_end = sv[1];
  if (child_end == 3) {
    child_end = fcntl(sv[1], F_DUPFD_CLOEXEC, 4);
    close(sv[1]);
    if (child_end < 0) {
      close(sv[0]);
      return false;
    }
  }
  std::string marker = std::string(kHelperEnv) + "=" + std::to_string(getpid());
  // Only what the fork server itself reads: nothing else of this process's environment.
  std::vector<std::string> env = {marker};
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  char arg0[] = "wasmjail-zygote";
  char* argv[] = {arg0, nullptr};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, child_end, 3);
  pid_t pid = -1;
  // posix_spawn (vfork + exec): safe with other threads running; the helper starts from the
  // binary, with none of this process's memory.
  int rc = posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(child_end);
  if (rc != 0) {
    close(sv[0]);
    return false;
  }
  g_zygote = new Zygote(pid, sv[0]);
  return true;
}

bool Zygote::start() {
  if (g_zygote) return true;
  // fork() is only safe while we are the only thread.
  if (count_threads() != 1) return false;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return false;
  pid_t self = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(sv[0]);
    close(sv[1]);
    return false;
  }
  if (pid == 0) {
    close(sv[0]);
    zygote_main(sv[1], self);
  }
  close(sv[1]);
  g_zygote = new Zygote(pid, sv[0]);
  return true;
}

Zygote* Zygote::get() {
  return g_zygote;
}

void Zygote::stop() {
  if (g_stop_hook) g_stop_hook(sock_);
  std::map<uint32_t, FillDone> pending;
  pending.swap(pending_);
  if (!pending.empty()) g_strays_possible = true;
  close(sock_);
  kill(pid_, SIGKILL);
  // Reaped if it goes within a moment; a fork server stuck in the kernel stays a zombie
  // rather than stall the event loop.
  for (int i = 0; i < 100; ++i) {
    pid_t got = waitpid(pid_, nullptr, WNOHANG);
    if (got == pid_ || (got < 0 && errno != EINTR)) break;
    usleep(1000);
  }
  if (g_zygote == this) g_zygote = nullptr;
  delete this;
  for (auto& [seq, done] : pending) done(std::nullopt);
}

std::optional<sandbox::CloneResult> Zygote::spawn(const ChildSetup& s) {
  // More fds than one message carries: this job is cloned directly (the fork server stays).
  if (s.preopen_fds.size() > kMaxPreopens) return std::nullopt;
  int mfd = memfd_with(encode_child_setup(s), "wasmjail-job");
  if (mfd < 0) return std::nullopt;
  std::vector<int> fds = {mfd, s.stdout_w, s.stderr_w, s.record_w};
  fds.insert(fds.end(), s.preopen_fds.begin(), s.preopen_fds.end());
  if (s.stdin_fd >= 0) fds.push_back(s.stdin_fd);
  auto r = request(kSpawn, warm_spec_of(s), fds, static_cast<uint32_t>(s.preopen_fds.size()), s.stdin_fd >= 0);
  close(mfd);
  return r;
}

std::optional<sandbox::CloneResult> Zygote::fill(const WarmSpec& spec, int channel) {
  return request(kFill, spec, {channel});
}

bool Zygote::wait_ready() {
  if (ready_) return true;
  // The first request waits for V8's initialization in the zygote.
  pollfd p{sock_, POLLIN, 0};
  int n;
  do n = poll(&p, 1, 10000);
  while (n < 0 && errno == EINTR);
  char c = 0;
  std::vector<int> fds;
  if (n != 1 || recv_with_fds(sock_, &c, 1, &fds) != 1 || c != 'R') {
    for (int fd : fds) close(fd);
    return false;
  }
  return ready_ = true;
}

uint32_t Zygote::send_request(uint32_t kind, const WarmSpec& spec, const std::vector<int>& fds, uint32_t preopens,
                              bool has_stdin) {
  int sfd = memfd_with(encode_warm_spec(spec), "wasmjail-policy");
  if (sfd < 0) return 0;
  std::vector<int> all = {sfd};
  all.insert(all.end(), fds.begin(), fds.end());
  uint32_t seq = ++seq_;
  if (seq == 0) seq = ++seq_;
  RequestHead head{kSetupMagic, seq, kind, preopens, has_stdin ? 1u : 0u};
  bool sent = send_with_fds(sock_, &head, sizeof head, all);
  int send_err = errno;
  close(sfd);
  if (!sent) {
    // Nothing reached the zygote: a dead zygote is stopped.
    if (send_err == EPIPE || send_err == ECONNRESET || send_err == ENOTCONN) stop();
    return 0;
  }
  return seq;
}

bool Zygote::parse_reply(const char* buf, ssize_t got, std::vector<int>* fds, uint32_t* seq,
                         sandbox::CloneResult* r) {
  auto fail = [&] {
    for (int fd : *fds) close(fd);  // a job process it created exits at EOF on its go-ahead
    fds->clear();
    return false;
  };
  if (got < static_cast<ssize_t>(sizeof(ReplyHead))) return fail();
  ReplyHead h{};
  std::memcpy(&h, buf, sizeof h);
  // A pid (with the go-ahead's write end), or a refusal with its reason.
  if (!(h.pid > 0 || (h.pid < 0 && (h.err != 0 || got > static_cast<ssize_t>(sizeof h))))) return fail();
  if (h.pid > 0 && fds->size() != 1) return fail();
  if (h.pid < 0 && !fds->empty()) return fail();
  r->go_fd = h.pid > 0 ? (*fds)[0] : -1;
  fds->clear();
  *seq = h.seq;
  r->pid = h.pid;
  r->err = h.err;
  r->applied = h.applied;
  r->skipped = h.skipped;
  r->error.assign(buf + sizeof h, static_cast<size_t>(got) - sizeof h);
  return true;
}

std::optional<sandbox::CloneResult> Zygote::await_reply(uint32_t seq) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{sock_, POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(std::max<long>(0, left.count())));
    if (n < 0 && errno == EINTR) continue;
    char buf[kMaxReply];
    std::vector<int> got_fds;
    ssize_t got = n == 1 ? recv_with_fds(sock_, buf, sizeof buf, &got_fds) : -1;
    uint32_t rseq = 0;
    sandbox::CloneResult r;
    bool parsed = got > 0 && parse_reply(buf, got, &got_fds, &rseq, &r);
    for (int fd : got_fds) close(fd);
    if (parsed && rseq != seq && !pending_.count(rseq)) {
      if (r.go_fd >= 0) close(r.go_fd);
      parsed = false;
    }
    if (!parsed) {
      // Gone, stuck or lying: from here a job process may exist; it waits for the go-ahead,
      // which comes only after the reply, so stopping the zygote makes it exit unrun.
      stop();
      g_strays_possible = true;
      sandbox::CloneResult failed;
      failed.err = EIO;
      failed.error = "the fork server did not answer for this job (it is stopped; a new one is started)";
      return failed;
    }
    if (rseq == seq) return r;
    // An earlier fill's reply (the zygote answers in order).
    auto it = pending_.find(rseq);
    FillDone done = std::move(it->second);
    pending_.erase(it);
    done(r);
  }
}

std::optional<sandbox::CloneResult> Zygote::request(uint32_t kind, const WarmSpec& spec, const std::vector<int>& fds,
                                                    uint32_t preopens, bool has_stdin) {
  if (!wait_ready()) {
    stop();
    return std::nullopt;  // nothing was sent
  }
  uint32_t seq = send_request(kind, spec, fds, preopens, has_stdin);
  if (!seq) return std::nullopt;
  return await_reply(seq);
}

bool Zygote::fill_async(const WarmSpec& spec, int channel, FillDone done) {
  if (!wait_ready()) {
    stop();
    return false;
  }
  uint32_t seq = send_request(kFill, spec, {channel});
  if (!seq) return false;
  pending_[seq] = std::move(done);
  return true;
}

void Zygote::read_replies() {
  while (!pending_.empty()) {
    char buf[kMaxReply];
    std::vector<int> got_fds;
    ssize_t got = recv_with_fds(sock_, buf, sizeof buf, &got_fds, MSG_DONTWAIT);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    uint32_t rseq = 0;
    sandbox::CloneResult r;
    bool parsed = got > 0 && parse_reply(buf, got, &got_fds, &rseq, &r);
    for (int fd : got_fds) close(fd);
    if (parsed && !pending_.count(rseq)) {
      if (r.go_fd >= 0) close(r.go_fd);
      parsed = false;
    }
    if (!parsed) {
      stop();  // gone or lying: the pending fills fail (their processes exit unrun)
      g_strays_possible = true;
      return;
    }
    auto it = pending_.find(rseq);
    FillDone done = std::move(it->second);
    pending_.erase(it);
    done(r);
  }
}

void Zygote::set_stop_hook(std::function<void(int)> hook) { g_stop_hook = std::move(hook); }

bool send_job_to_warm(int channel, const ChildSetup& s, std::string* error) {
  if (s.preopen_fds.size() > kMaxPreopens) {
    *error = "too many preopens for a warm process";
    return false;
  }
  int mfd = memfd_with(encode_child_setup(s), "wasmjail-job");
  if (mfd < 0) {
    *error = std::string("memfd_create: ") + std::strerror(errno);
    return false;
  }
  std::vector<int> fds = {mfd, s.stdout_w, s.stderr_w, s.record_w};
  fds.insert(fds.end(), s.preopen_fds.begin(), s.preopen_fds.end());
  if (s.stdin_fd >= 0) fds.push_back(s.stdin_fd);
  JobHead head{kSetupMagic, static_cast<uint32_t>(s.preopen_fds.size()), s.stdin_fd >= 0 ? 1u : 0u};
  bool sent = send_with_fds(channel, &head, sizeof head, fds);
  int e = errno;
  close(mfd);
  if (!sent) *error = std::string("send to the warm process: ") + std::strerror(e);
  return sent;
}

}  // namespace wj
