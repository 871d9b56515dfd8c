#include "supervisor/warm_pool.h"

#include <linux/capability.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <set>

namespace wj {
namespace {

std::set<pid_t> g_warm_pids;

bool alive(pid_t pid) {
  // Our child (CLONE_PARENT): not yet reaped means waitpid answers 0 while it runs.
  pid_t got = waitpid(pid, nullptr, WNOHANG);
  return got == 0;
}

bool ready(int channel) {
  char c;
  return recv(channel, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
}

// Whether this process may raise another's priority back (CAP_SYS_NICE; root has it).
bool can_renice() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &hdr, caps) != 0) return false;
  return caps[CAP_SYS_NICE / 32].effective & (1u << (CAP_SYS_NICE % 32));
}

}  // namespace

bool WarmPool::owns(pid_t pid) { return g_warm_pids.count(pid) != 0; }

WarmPool::~WarmPool() { shutdown(); }

void WarmPool::kill_entry(const Entry& e) {
  close(e.channel);
  kill(e.pid, SIGKILL);
  while (waitpid(e.pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  g_warm_pids.erase(e.pid);
}

size_t WarmPool::idle() const {
  size_t n = 0;
  for (const auto& [k, s] : slots_) n += s.idle.size();
  return n;
}

void WarmPool::shutdown() {
  shut_down_ = true;
  if (timer_) {
    uv_timer_stop(timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
  for (auto& [k, s] : slots_)
    for (const Entry& e : s.idle) kill_entry(e);
  slots_.clear();
}

bool WarmPool::fill_one(Slot& slot) {
  if (!Zygote::get() && !Zygote::start_clean()) return false;
  Zygote* z = Zygote::get();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return false;
  std::optional<sandbox::CloneResult> r = z->fill(slot.spec, sv[1]);
  close(sv[1]);
  if (!r || r->pid <= 0) {
    close(sv[0]);
    return false;
  }
  g_warm_pids.insert(r->pid);
  slot.idle.push_back(Entry{r->pid, sv[0], *r});
  return true;
}

std::optional<WarmPool::Taken> WarmPool::take(const WarmSpec& job_spec, bool fill_if_empty) {
  if (shut_down_) return std::nullopt;
  static const bool renice = can_renice();
  WarmSpec spec = job_spec;
  spec.lower_priority = renice && !fill_if_empty;
  std::string key = encode_warm_spec(spec);
  auto it = slots_.find(key);
  if (it == slots_.end()) {
    if (size_ == 0 && !fill_if_empty) return std::nullopt;
    if (slots_.size() >= kMaxKeys) {
      auto lru = slots_.begin();
      for (auto s = slots_.begin(); s != slots_.end(); ++s)
        if (s->second.last_used < lru->second.last_used) lru = s;
      for (const Entry& e : lru->second.idle) kill_entry(e);
      slots_.erase(lru);
    }
    it = slots_.emplace(key, Slot{spec, {}, 0, false}).first;
  }
  Slot& slot = it->second;
  slot.last_used = ++clock_;
  slot.failing = false;
  // Dead ones (killed while idle) are reaped and dropped.
  for (auto e = slot.idle.begin(); e != slot.idle.end();) {
    if (alive(e->pid)) {
      ++e;
      continue;
    }
    close(e->channel);
    g_warm_pids.erase(e->pid);
    e = slot.idle.erase(e);
  }
  if (slot.idle.empty() && fill_if_empty) fill_one(slot);
  if (slot.idle.empty()) return std::nullopt;
  auto pick = slot.idle.begin();
  for (auto e = slot.idle.begin(); e != slot.idle.end(); ++e)
    if (ready(e->channel)) {
      pick = e;
      break;
    }
  // Back to this process's own priority before the job's code can run.
  if (spec.lower_priority) {
    errno = 0;
    int own = getpriority(PRIO_PROCESS, 0);
    if (errno == 0) setpriority(PRIO_PROCESS, static_cast<id_t>(pick->pid), own);
  }
  Taken t{pick->pid, pick->channel, pick->clone};
  t.clone.pid = pick->pid;
  g_warm_pids.erase(pick->pid);
  slot.idle.erase(pick);
  return t;
}

void WarmPool::schedule_fill() {
  if (shut_down_ || size_ == 0) return;
  if (!timer_) {
    timer_ = new uv_timer_t;
    uv_timer_init(loop_, timer_);
    timer_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(timer_));  // never what keeps a loop running
  }
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(timer_))) return;
  uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<WarmPool*>(t->data)->on_timer(); }, 0, 0);
}

void WarmPool::on_timer() {
  // One fill per loop turn: what is ready to run (a child's record, a request) goes first.
  for (auto& [k, slot] : slots_) {
    if (slot.failing || slot.idle.size() >= size_) continue;
    if (!fill_one(slot)) slot.failing = true;
    schedule_fill();
    return;
  }
}

}  // namespace wj
