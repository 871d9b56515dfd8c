// Cgroups (see cgroup.h): per-job folders, limits, counters, cleanup; v1 and v2.
#include "sandbox/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

namespace wj::sandbox {
namespace {

constexpr uint64_t kCpuPeriodUs = 100000;  // 100 ms: the kernel's default CFS period
// The controllers a job's limits use; cpuacct only reports (v1).
const std::vector<std::string> kV2Controllers = {"memory", "pids", "cpu"};
const std::vector<std::string> kV1Controllers = {"memory", "pids", "cpu", "cpuacct"};
// Interface files a v2 kernel creates in a new leaf (for the fake tree of the tests).
const std::vector<std::string> kV2LeafFiles = {
    "cgroup.procs",  "cgroup.kill", "cgroup.events", "memory.max",  "memory.swap.max", "memory.oom.group",
    "memory.events", "memory.peak", "pids.max",      "pids.events", "cpu.max",         "cpu.stat"};

std::string err_text(const std::string& what, int e) {
  return what + ": " + std::strerror(e);
}

bool exists(const std::string& p) {
  struct stat st {};
  return lstat(p.c_str(), &st) == 0;
}

std::optional<std::string> read_small(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (1u << 20)) break;
  }
  close(fd);
  return out;
}

std::optional<uint64_t> read_u64(const std::string& path) {
  auto s = read_small(path);
  if (!s || s->empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s->c_str(), &end, 10);
  if (errno != 0 || end == s->c_str()) return std::nullopt;
  return v;
}

// "key value" lines (memory.events, cpu.stat, memory.oom_control, pids.events).
std::optional<uint64_t> read_key(const std::string& path, const std::string& key) {
  auto s = read_small(path);
  if (!s) return std::nullopt;
  std::istringstream in(*s);
  std::string k;
  unsigned long long v;
  while (in >> k >> v)
    if (k == key) return v;
  return std::nullopt;
}

std::vector<pid_t> read_pids(const std::string& procs) {
  std::vector<pid_t> out;
  auto s = read_small(procs);
  if (!s) return out;
  std::istringstream in(*s);
  pid_t p;
  while (in >> p) out.push_back(p);
  return out;
}

// Field 22 of /proc/PID/stat: the process's start time in clock ticks since boot.
std::optional<uint64_t> start_time_of(pid_t pid) {
  auto s = read_small("/proc/" + std::to_string(pid) + "/stat");
  if (!s) return std::nullopt;
  auto close_paren = s->rfind(')');
  if (close_paren == std::string::npos) return std::nullopt;
  std::istringstream in(s->substr(close_paren + 2));
  std::string field;
  // Fields from 3 (state) on; start time is field 22.
  for (int i = 3; i <= 22; ++i)
    if (!(in >> field)) return std::nullopt;
  return std::strtoull(field.c_str(), nullptr, 10);
}

std::optional<pid_t> parent_of(pid_t pid) {
  auto s = read_small("/proc/" + std::to_string(pid) + "/stat");
  if (!s) return std::nullopt;
  auto close_paren = s->rfind(')');
  if (close_paren == std::string::npos) return std::nullopt;
  std::istringstream in(s->substr(close_paren + 2));
  std::string state;
  pid_t ppid = 0;
  if (!(in >> state >> ppid)) return std::nullopt;
  return ppid;
}

// Parses "<pid>-<start>-<seq>" (and "<pid>-<start>-supervisor", the server's own v2 leaf).
bool parse_owned_name(const std::string& name, pid_t* pid, uint64_t* start) {
  unsigned long long p = 0, st = 0;
  char rest[32] = {};
  if (name.size() > 60) return false;
  if (std::sscanf(name.c_str(), "%llu-%llu-%31s", &p, &st, rest) != 3) return false;
  std::string r(rest);
  bool digits = !r.empty() && r.find_first_not_of("0123456789") == std::string::npos;
  if (!digits && r != "supervisor") return false;
  if (name != std::to_string(p) + "-" + std::to_string(st) + "-" + r) return false;  // canonical only
  *pid = static_cast<pid_t>(p);
  *start = st;
  return p > 0;
}

bool owner_alive(pid_t pid, uint64_t start) {
  auto st = start_time_of(pid);
  return st && *st == start;
}

uint64_t self_start_time() {
  static const uint64_t t = start_time_of(getpid()).value_or(0);
  return t;
}

// SIGKILL to each process listed in a folder's cgroup.procs. A listed pid may exit and be
// reused by another process before the signal: each is pinned with a pidfd first and
// signalled only if the folder still lists it (then the pinned process is the one in it).
void kill_members(const std::string& dir) {
  for (pid_t p : read_pids(dir + "/cgroup.procs")) {
    if (p <= 0) continue;
    int fd = static_cast<int>(syscall(SYS_pidfd_open, p, 0));
    if (fd < 0) continue;  // gone already
    std::vector<pid_t> now = read_pids(dir + "/cgroup.procs");
    if (std::find(now.begin(), now.end(), p) != now.end()) syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0);
    close(fd);
  }
}

// Kills what is in a cgroup folder and removes it; waits up to ~0.5 s for the kernel to
// let go of exiting tasks.
std::optional<std::string> kill_and_rmdir(const std::string& dir, bool v2, bool fake) {
  if (v2 && !fake && exists(dir + "/cgroup.kill")) (void)write_cgroup_file(dir + "/cgroup.kill", "1");
  if (!fake) kill_members(dir);
  if (fake)
    for (const std::string& f : kV2LeafFiles) unlink((dir + "/" + f).c_str());
  int e = 0;
  for (int i = 0; i < 500; ++i) {
    if (rmdir(dir.c_str()) == 0 || errno == ENOENT) return std::nullopt;
    e = errno;
    if (e != EBUSY) break;
    if (i % 50 == 49 && !fake) kill_members(dir);
    usleep(1000);
  }
  return err_text("rmdir " + dir, e);
}

struct MountInfo {
  std::string root, mount_point, fstype;
  std::set<std::string> options;  // super options: the v1 controllers
};

std::vector<MountInfo> cgroup_mounts() {
  std::vector<MountInfo> out;
  std::ifstream f("/proc/self/mountinfo");
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string id, parent, devno, root, mp, opts, field;
    if (!(in >> id >> parent >> devno >> root >> mp >> opts)) continue;
    while (in >> field && field != "-") {
    }
    std::string fstype, source, super;
    if (!(in >> fstype >> source >> super)) continue;
    if (fstype != "cgroup" && fstype != "cgroup2") continue;
    MountInfo m{root, mp, fstype, {}};
    std::istringstream so(super);
    std::string o;
    while (std::getline(so, o, ',')) m.options.insert(o);
    out.push_back(std::move(m));
  }
  return out;
}

// This process's cgroup in the v2 hierarchy ("0::/path"), or nullopt.
std::optional<std::string> own_v2_path() {
  std::ifstream f("/proc/self/cgroup");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  return std::nullopt;
}

bool kernel_has_clone3() {
  // clone3 with an invalid (too small) size answers EINVAL when the call exists.
  long r = syscall(SYS_clone3, nullptr, 0);
  return !(r < 0 && errno == ENOSYS);
}

}  // namespace

const char* cgroup_version_name(CgroupVersion v) {
  switch (v) {
    case CgroupVersion::kNone: return "none";
    case CgroupVersion::kV1: return "v1";
    case CgroupVersion::kV2: return "v2";
  }
  return "none";
}

bool CgroupHost::has(const std::string& c) const {
  if (version == CgroupVersion::kV1) return v1_base.count(c) != 0;
  if (version == CgroupVersion::kV2)
    for (const auto& x : v2_controllers)
      if (x == c) return true;
  return false;
}

std::string CgroupHost::describe() const {
  if (version == CgroupVersion::kNone) return "none (" + unavailable + ")";
  std::string s = std::string(cgroup_version_name(version)) + " (";
  bool first = true;
  auto add = [&](const std::string& c) {
    s += (first ? "" : ", ") + c;
    first = false;
  };
  if (version == CgroupVersion::kV1)
    for (const auto& [c, _] : v1_base) add(c);
  else
    for (const auto& c : v2_controllers) add(c);
  if (first) s += "no controllers";
  s += ")";
  if (!unavailable.empty()) s += " [" + unavailable + "]";
  if (version == CgroupVersion::kV2) s += " at " + v2_base;
  return s;
}

std::optional<std::string> write_cgroup_file(const std::string& path, const std::string& value) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return err_text("open " + path, errno);
  ssize_t n;
  do n = write(fd, value.data(), value.size());
  while (n < 0 && errno == EINTR);
  int e = errno;
  close(fd);
  if (n != static_cast<ssize_t>(value.size())) {
    std::string msg = err_text("write \"" + value + "\" to " + path, n < 0 ? e : EIO);
    errno = n < 0 ? e : EIO;  // for callers that act on it (EBUSY from subtree_control)
    return msg;
  }
  return std::nullopt;
}

long clone_into_cgroup(unsigned long flags, int cgroup_fd) {
  struct clone_args args {};
  args.flags = flags | CLONE_INTO_CGROUP;
  args.exit_signal = SIGCHLD;
  args.cgroup = static_cast<uint64_t>(cgroup_fd);
  return syscall(SYS_clone3, &args, sizeof args);
}

CgroupHost cgroup_host_v2(const std::string& base, bool move_self, bool fake_tree) {
  CgroupHost h;
  h.fake_tree = fake_tree;
  auto fail = [&](std::string why) {
    h.version = CgroupVersion::kNone;
    h.unavailable = std::move(why);
    h.v2_controllers.clear();
    return h;
  };
  if (!fake_tree) {
    struct statfs fs {};
    if (statfs(base.c_str(), &fs) != 0) return fail(err_text("statfs " + base, errno));
    if (static_cast<unsigned long>(fs.f_type) != CGROUP2_SUPER_MAGIC)
      return fail(base + " is not a cgroup2 folder");
    // The host's root cgroup (the only one without cgroup.type, even seen from inside a
    // cgroup namespace) is the machine's: enabling controllers there is not ours to do.
    if (access((base + "/cgroup.type").c_str(), F_OK) != 0 && errno == ENOENT)
      return fail(base + " is the host's root cgroup: run wasmjail in a delegated cgroup "
                  "(systemd Delegate=yes) or set WASMJAIL_CGROUP_ROOT");
  }
  h.version = CgroupVersion::kV2;
  h.v2_base = base;
  auto available = read_small(base + "/cgroup.controllers");
  if (!available) return fail(err_text("read " + base + "/cgroup.controllers", errno));
  std::set<std::string> avail;
  {
    std::istringstream in(*available);
    std::string c;
    while (in >> c) avail.insert(c);
  }
  std::set<std::string> enabled;
  auto read_enabled = [&] {
    std::istringstream in(read_small(base + "/cgroup.subtree_control").value_or(""));
    std::string c;
    while (in >> c) enabled.insert(c[0] == '+' ? c.substr(1) : c);  // "+x": as written to a fake tree
  };
  read_enabled();
  std::string want;
  for (const std::string& c : kV2Controllers)
    if (avail.count(c) && !enabled.count(c)) want += (want.empty() ? "+" : " +") + c;
  if (!want.empty()) {
    auto err = write_cgroup_file(base + "/cgroup.subtree_control", want);
    if (err && move_self && errno == EBUSY) {
      // v2's rule: a cgroup with processes cannot enable controllers for children. When
      // the base is our own cgroup (systemd's Delegate=yes), move ourselves and our direct
      // children (the fork server) into a leaf; anyone else in it means it is not ours.
      std::vector<pid_t> inside = read_pids(base + "/cgroup.procs");
      for (pid_t p : inside)
        if (p != getpid() && parent_of(p).value_or(0) != getpid())
          return fail(
              "the cgroup " + base + " holds other processes (pid " + std::to_string(p) +
              "); run wasmjail in a cgroup of its own (systemd Delegate=yes) or set WASMJAIL_CGROUP_ROOT");
      std::string leaf =
          base + "/" + std::to_string(getpid()) + "-" + std::to_string(self_start_time()) + "-supervisor";
      if (mkdir(leaf.c_str(), 0755) != 0 && errno != EEXIST) return fail(err_text("mkdir " + leaf, errno));
      for (pid_t p : inside)
        if (auto e = write_cgroup_file(leaf + "/cgroup.procs", std::to_string(p)))
          return fail("cannot move wasmjail into " + leaf + ": " + *e);
      err = write_cgroup_file(base + "/cgroup.subtree_control", want);
    }
    if (err) return fail("cannot enable controllers for job cgroups: " + *err);
    read_enabled();
  }
  for (const std::string& c : kV2Controllers)
    if (enabled.count(c)) h.v2_controllers.push_back(c);
  // A cgroup without memory, pids or cpu would enforce nothing: not worth calling applied.
  if (h.v2_controllers.empty())
    return fail("the cgroup2 folder " + base +
                " has none of the memory, pids, cpu controllers (cgroup.controllers: \"" +
                std::string(available->substr(0, available->find('\n'))) + "\")");
  h.clone_into_cgroup = !fake_tree && kernel_has_clone3();
  return h;
}

CgroupHost detect_cgroups() {
  if (const char* root = getenv("WASMJAIL_CGROUP_ROOT"); root && *root) {
    std::string base(root);
    while (base.size() > 1 && base.back() == '/') base.pop_back();
    if (base.empty() || base[0] != '/') {
      CgroupHost h;
      h.unavailable = "WASMJAIL_CGROUP_ROOT must be an absolute path";
      return h;
    }
    return cgroup_host_v2(base, false);
  }
  std::vector<MountInfo> mounts = cgroup_mounts();
  CgroupHost h;
  // v1 (or hybrid): the controllers live in their own hierarchies.
  for (const std::string& c : kV1Controllers) {
    for (const MountInfo& m : mounts) {
      if (m.fstype != "cgroup" || !m.options.count(c)) continue;
      std::string dir = m.mount_point + "/wasmjail";
      if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
        h.unavailable += (h.unavailable.empty() ? "" : "; ") + err_text("mkdir " + dir, errno);
        break;
      }
      h.v1_base[c] = dir;
      break;
    }
  }
  if (!h.v1_base.empty()) {
    h.version = CgroupVersion::kV1;  // `unavailable` keeps why a controller is missing, if one is
    return h;
  }
  for (const MountInfo& m : mounts) {
    if (m.fstype != "cgroup2") continue;
    auto own = own_v2_path();
    if (!own) continue;
    std::string rel = *own;
    // Inside a cgroup namespace or a bind mount, the mount shows the cgroup `root`.
    if (m.root != "/" && rel.rfind(m.root, 0) == 0) rel = rel.substr(m.root.size());
    std::string base = m.mount_point + (rel == "/" ? "" : rel);
    CgroupHost v2 = cgroup_host_v2(base, true);
    if (v2.version == CgroupVersion::kV2) return v2;
    if (h.unavailable.empty()) h.unavailable = v2.unavailable;
  }
  if (h.unavailable.empty()) h.unavailable = "no cgroup hierarchy is mounted";
  return h;
}

std::string job_cgroup_name(uint64_t seq) {
  return std::to_string(getpid()) + "-" + std::to_string(self_start_time()) + "-" + std::to_string(seq);
}

size_t remove_stale_cgroups(const CgroupHost& host) {
  std::set<std::string> bases;
  if (host.version == CgroupVersion::kV2) bases.insert(host.v2_base);
  for (const auto& [c, dir] : host.v1_base) bases.insert(dir);
  size_t removed = 0;
  for (const std::string& base : bases) {
    DIR* d = opendir(base.c_str());
    if (!d) continue;
    std::vector<std::string> names;
    while (dirent* e = readdir(d))
      if (e->d_type == DT_DIR) names.emplace_back(e->d_name);
    closedir(d);
    for (const std::string& n : names) {
      pid_t pid = 0;
      uint64_t start = 0;
      if (!parse_owned_name(n, &pid, &start) || owner_alive(pid, start)) continue;
      if (!kill_and_rmdir(base + "/" + n, host.version == CgroupVersion::kV2, host.fake_tree)) ++removed;
    }
  }
  return removed;
}

std::unique_ptr<JobCgroup> JobCgroup::create(const CgroupHost& host, const std::string& name,
                                             const CgroupLimits& lim, std::string* error) {
  if (host.version == CgroupVersion::kNone) {
    *error = host.unavailable;
    return nullptr;
  }
  std::unique_ptr<JobCgroup> cg(new JobCgroup());
  cg->version_ = host.version;
  cg->fake_tree_ = host.fake_tree;
  const bool v2 = host.version == CgroupVersion::kV2;
  auto need = [&](const char* controller, const char* limit) -> bool {
    if (host.has(controller)) return true;
    *error = std::string("limits.") + limit + " needs the " + controller +
             " controller, which this host's cgroup " + host.describe() + " does not provide";
    return false;
  };
  if ((lim.memory_bytes && !need("memory", "memory")) || (lim.processes && !need("pids", "processes")) ||
      (lim.cpu_cores && !need("cpu", "cpu_quota")))
    return nullptr;

  // The folders: one on v2; one per distinct hierarchy on v1.
  std::vector<std::pair<std::string, std::string>> wanted;  // controller, folder
  if (v2) {
    for (const std::string& c : host.v2_controllers) wanted.emplace_back(c, host.v2_base + "/" + name);
    if (wanted.empty()) wanted.emplace_back("", host.v2_base + "/" + name);
  } else {
    // Only the hierarchies this job needs: memory (its limit, OOM kills, peak) and cpuacct
    // (CPU usage) always; pids and cpu only for their limits. A v1 cpu group of its own
    // would also change how the job is weighed against the host's other tasks.
    for (const auto& [c, dir] : host.v1_base) {
      if ((c == "pids" && !lim.processes) || (c == "cpu" && !lim.cpu_cores)) continue;
      wanted.emplace_back(c, dir + "/" + name);
    }
  }
  for (const auto& [c, dir] : wanted) {
    cg->by_controller_[c] = dir;
    bool seen = false;
    for (const auto& p : cg->paths_) seen = seen || p == dir;
    if (seen) continue;
    if (mkdir(dir.c_str(), 0755) != 0) {
      *error = err_text("mkdir " + dir, errno);
      return nullptr;  // the destructor removes the folders made so far
    }
    cg->paths_.push_back(dir);
    if (host.fake_tree)
      for (const std::string& f : kV2LeafFiles) {
        int fd = open((dir + "/" + f).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) close(fd);
      }
  }
  auto put = [&](const std::string& controller, const std::string& file, const std::string& value) -> bool {
    if (auto e = write_cgroup_file(cg->path_of(controller) + "/" + file, value)) {
      *error = *e;
      return false;
    }
    return true;
  };
  auto has_file = [&](const std::string& controller, const std::string& file) {
    return exists(cg->path_of(controller) + "/" + file);
  };
  if (lim.memory_bytes) {
    const std::string bytes = std::to_string(*lim.memory_bytes);
    if (v2) {
      if (!put("memory", "memory.max", bytes)) return nullptr;
      // No swap: a job over its memory is killed rather than paged out. The whole job
      // goes at once when the OOM killer strikes (oom.group), not one of its threads' tasks.
      if (has_file("memory", "memory.swap.max") && !put("memory", "memory.swap.max", "0")) return nullptr;
      if (has_file("memory", "memory.oom.group") && !put("memory", "memory.oom.group", "1")) return nullptr;
    } else {
      if (!put("memory", "memory.limit_in_bytes", bytes)) return nullptr;
      // memory+swap equal to memory: no swap (present when the kernel accounts swap).
      if (has_file("memory", "memory.memsw.limit_in_bytes")) {
        if (!put("memory", "memory.memsw.limit_in_bytes", bytes)) return nullptr;
      } else if (has_file("memory", "memory.swappiness") && !put("memory", "memory.swappiness", "0")) {
        return nullptr;
      }
    }
  }
  if (lim.processes && !put("pids", "pids.max", std::to_string(*lim.processes))) return nullptr;
  if (lim.cpu_cores) {
    const auto quota = static_cast<uint64_t>(std::llround(*lim.cpu_cores * kCpuPeriodUs));
    if (v2) {
      if (!put("cpu", "cpu.max", std::to_string(quota) + " " + std::to_string(kCpuPeriodUs))) return nullptr;
    } else {
      if (!put("cpu", "cpu.cfs_period_us", std::to_string(kCpuPeriodUs)) ||
          !put("cpu", "cpu.cfs_quota_us", std::to_string(quota)))
        return nullptr;
    }
  }
  if (v2 && host.clone_into_cgroup)
    cg->clone_fd_ = open(cg->paths_.front().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  return cg;
}

JobCgroup::~JobCgroup() {
  (void)remove();
}

std::string JobCgroup::path_of(const std::string& controller) const {
  auto it = by_controller_.find(controller);
  return it == by_controller_.end() ? std::string() : it->second;
}

std::optional<std::string> JobCgroup::join(pid_t pid) {
  const std::string p = std::to_string(pid);
  // v1 has a folder per hierarchy: where the process is now in each, so that a join that
  // fails part-way can put it back. Left in the folders it joined, it would be killed as a
  // straggler when they are removed, though the policy's best_effort lets it run without them.
  std::vector<std::string> origin(paths_.size());
  if (paths_.size() > 1)
    if (auto text = read_small("/proc/" + p + "/cgroup")) {
      std::istringstream in(*text);
      for (std::string line; std::getline(in, line);) {
        auto a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
        if (b == std::string::npos) continue;
        std::set<std::string> ctrls;
        std::istringstream cs(line.substr(a + 1, b - a - 1));
        for (std::string c; std::getline(cs, c, ',');) ctrls.insert(c);
        const std::string rel = line.substr(b + 1);
        for (size_t i = 0; i < paths_.size(); ++i)
          for (const auto& [c, dir] : by_controller_)
            if (dir == paths_[i] && ctrls.count(c)) {
              // paths_[i] is MOUNT/wasmjail/NAME
              std::string mount = dir.substr(0, dir.rfind('/'));
              mount = mount.substr(0, mount.rfind('/'));
              origin[i] = rel == "/" ? mount : mount + rel;
            }
      }
    }
  for (size_t i = 0; i < paths_.size(); ++i) {
    if (auto e = write_cgroup_file(paths_[i] + "/cgroup.procs", p)) {
      for (size_t j = 0; j < i; ++j)
        if (!origin[j].empty()) (void)write_cgroup_file(origin[j] + "/cgroup.procs", p);
      return e;
    }
  }
  return std::nullopt;
}

CgroupUsage JobCgroup::usage() const {
  CgroupUsage u;
  const std::string mem = path_of("memory"), pids = path_of("pids");
  if (version_ == CgroupVersion::kV2) {
    if (!mem.empty()) {
      u.oom_killed = read_key(mem + "/memory.events", "oom_kill").value_or(0) > 0 ||
                     read_key(mem + "/memory.events", "oom_group_kill").value_or(0) > 0;
      u.peak_memory_bytes = read_u64(mem + "/memory.peak");
    }
    if (!pids.empty()) u.processes_hit = read_key(pids + "/pids.events", "max").value_or(0) > 0;
    if (!paths_.empty())
      if (auto us = read_key(paths_.front() + "/cpu.stat", "usage_usec")) u.cpu_ns = *us * 1000;
  } else {
    if (!mem.empty()) {
      // oom_kill is counted since Linux 4.13; before, a limit that was hit (failcnt) and a
      // SIGKILL (the caller checks) are the OOM killer's mark.
      auto kills = read_key(mem + "/memory.oom_control", "oom_kill");
      u.oom_killed = kills ? *kills > 0 : read_u64(mem + "/memory.failcnt").value_or(0) > 0;
      u.peak_memory_bytes = read_u64(mem + "/memory.max_usage_in_bytes");
    }
    if (!pids.empty()) u.processes_hit = read_key(pids + "/pids.events", "max").value_or(0) > 0;
    if (std::string acct = path_of("cpuacct"); !acct.empty()) u.cpu_ns = read_u64(acct + "/cpuacct.usage");
  }
  return u;
}

std::optional<std::string> JobCgroup::remove() {
  if (removed_) return std::nullopt;
  removed_ = true;
  if (clone_fd_ >= 0) close(clone_fd_);
  clone_fd_ = -1;
  std::optional<std::string> first;
  for (auto it = paths_.rbegin(); it != paths_.rend(); ++it)
    if (auto e = kill_and_rmdir(*it, version_ == CgroupVersion::kV2, fake_tree_); e && !first) first = e;
  return first;
}

}  // namespace wj::sandbox
