#include "supervisor/warm_pool.h"

#include <linux/capability.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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

// A warm process waits for its go-ahead like any job process: it has no cgroup to join yet
// (that comes when it gets a job), so it gets the byte at once.
void go_ahead(sandbox::CloneResult& r) {
  if (r.go_fd < 0) return;
  (void)!send(r.go_fd, "g", 1, MSG_NOSIGNAL);
  close(r.go_fd);
  r.go_fd = -1;
}

}  // namespace

bool WarmPool::owns(pid_t pid) {
  return g_warm_pids.count(pid) != 0;
}

WarmPool::WarmPool(uv_loop_t* loop) : loop_(loop) {}

WarmPool::~WarmPool() {
  shutdown();
  Zygote::set_stop_hook(nullptr);
}

void WarmPool::unwatch() {
  if (!poll_) return;
  uv_poll_stop(poll_);
  uv_close(reinterpret_cast<uv_handle_t*>(poll_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
  poll_ = nullptr;
  poll_fd_ = -1;
}

void WarmPool::watch(int fd) {
  if (poll_ && poll_fd_ == fd) return;
  unwatch();
  poll_ = new uv_poll_t;
  if (uv_poll_init(loop_, poll_, fd) != 0) {
    delete poll_;
    poll_ = nullptr;
    return;
  }
  poll_fd_ = fd;
  poll_->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  // Before the fork server's socket closes, this watch goes.
  Zygote::set_stop_hook([this](int closing) {
    if (closing == poll_fd_) unwatch();
  });
  uv_poll_start(poll_, UV_READABLE, [](uv_poll_t* h, int, int) {
    auto* pool = static_cast<WarmPool*>(h->data);
    Zygote* z = Zygote::get();
    if (z && z->socket() == pool->poll_fd_)
      z->read_replies();
    else
      pool->unwatch();
  });
}

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
  unwatch();
  if (timer_) {
    uv_timer_stop(timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
  for (auto& [k, s] : slots_)
    for (const Entry& e : s.idle) kill_entry(e);
  slots_.clear();
}

bool WarmPool::fill_now(Slot& slot) {
  if (!Zygote::get() && !Zygote::start_clean()) return false;
  Zygote* z = Zygote::get();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return false;
  std::optional<sandbox::CloneResult> r = z->fill(slot.spec, sv[1]);
  close(sv[1]);
  if (r) go_ahead(*r);
  if (!r || r->pid <= 0) {
    close(sv[0]);
    return false;
  }
  g_warm_pids.insert(r->pid);
  slot.idle.push_back(Entry{r->pid, sv[0], *r});
  return true;
}

bool WarmPool::fill_async(const std::string& key, Slot& slot) {
  if (!Zygote::get() && !Zygote::start_clean()) return false;
  Zygote* z = Zygote::get();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return false;
  const int mine = sv[0];
  std::weak_ptr<bool> alive = alive_;
  bool sent =
      z->fill_async(slot.spec, sv[1], [this, alive, key, mine](std::optional<sandbox::CloneResult> r) {
        if (r) go_ahead(*r);
        const bool created = r && r->pid > 0;
        WarmPool* self = alive.expired() ? nullptr : this;
        auto it = self ? slots_.find(key) : slots_.end();
        if (self && it != slots_.end()) {
          it->second.filling--;
          if (!created) it->second.failing = true;
        }
        if (!created || !self || shut_down_ || it == slots_.end()) {
          close(mine);
          if (created) {
            kill(r->pid, SIGKILL);
            while (waitpid(r->pid, nullptr, 0) < 0 && errno == EINTR) {
            }
          }
          return;
        }
        g_warm_pids.insert(r->pid);
        it->second.idle.push_back(Entry{r->pid, mine, *r});
      });
  close(sv[1]);
  if (!sent) {
    close(sv[0]);
    return false;
  }
  slot.filling++;
  if (Zygote* now = Zygote::get()) watch(now->socket());
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
  if (slot.idle.empty() && fill_if_empty) fill_now(slot);
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
  uv_timer_start(
      timer_, [](uv_timer_t* t) { static_cast<WarmPool*>(t->data)->on_timer(); }, 0, 0);
}

void WarmPool::on_timer() {
  // Requests only: the fork server creates the processes while the loop goes on.
  for (auto& [k, slot] : slots_) {
    while (!slot.failing && slot.idle.size() + slot.filling < size_)
      if (!fill_async(k, slot)) slot.failing = true;
  }
}

}  // namespace wj
