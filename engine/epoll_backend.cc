// epoll backend, for where io_uring is refused (container seccomp profiles,
// kernel.io_uring_disabled). Same contract as the io_uring backend: multishot
// accept/recv are emulated by readiness loops, fsync and syncfs run on a
// small worker pool per shard, completions are always delivered from wait().
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "engine/backend.h"
#include "engine/blocking_pool.h"

namespace ringmail::engine {
namespace {

constexpr size_t kRecvBytes = 16384;
constexpr int kFsyncWorkers = 4;

class EpollBackend final : public Backend {
 public:
  ~EpollBackend() override {
    if (epfd_ >= 0) ::close(epfd_);
    if (efd_ >= 0) ::close(efd_);
  }

  int init(std::string* why) {
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epfd_ < 0 || efd_ < 0 || pool_.event_fd() < 0) {
      *why = std::string("epoll set-up: ") + std::strerror(errno);
      return -errno;
    }
    add(efd_, EPOLLIN, &efd_tag_);
    add(pool_.event_fd(), EPOLLIN, &pool_tag_);
    return 0;
  }

  config::BackendKind kind() const override { return config::BackendKind::kEpoll; }

  void accept(int listen_fd, Completion* c, AcceptMode mode) override {
    Reg& r = reg(listen_fd);
    r.listener = true;
    r.accept_one = mode == AcceptMode::kOne;
    r.in = c;
    update(listen_fd);
    pending_reads_.push_back(listen_fd);  // something may already be waiting
  }

  void recv(int fd, Completion* c) override {
    Reg& r = reg(fd);
    r.in = c;
    update(fd);
    pending_reads_.push_back(fd);
  }

  void release(uint16_t) override {}

  void send(int fd, const char* p, size_t n, Completion* c) override {
    Reg& r = reg(fd);
    r.out = c;
    r.out_p = p;
    r.out_n = n;
    pending_writes_.push_back(fd);
  }

  void blocking(storage::BlockingOp* op, Completion* c) override { pool_.submit(op, c); }

  void poll(int fd, uint32_t events, Completion* c) override {
    Reg& r = reg(fd);
    r.poll = c;
    r.poll_events = events;
    update(fd);
    pending_polls_.push_back(fd);  // it may be ready already (edge-triggered)
  }

  void connect(int fd, const sockaddr* addr, socklen_t len, Completion* c) override {
    if (::connect(fd, addr, len) == 0) {
      finished_.emplace_back(c, 0);
      return;
    }
    if (errno != EINPROGRESS) {
      finished_.emplace_back(c, -errno);
      return;
    }
    Reg& r = reg(fd);
    r.connect = c;
    update(fd);  // EPOLLOUT says the connection is up (or failed)
  }

  void cancel(int fd, Completion* c) override {
    if (static_cast<size_t>(fd) >= regs_.size()) return;
    Reg& r = regs_[static_cast<size_t>(fd)];
    if (r.poll == c || r.connect == c || r.in == c) {
      if (r.poll == c) r.poll = nullptr;
      if (r.connect == c) r.connect = nullptr;
      if (r.in == c) r.in = nullptr;
      finished_.emplace_back(c, -ECANCELED);
    }
    // The owner closes the descriptor next: forget it, so a reuse of the
    // number starts from scratch.
    if (r.registered) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
    r = Reg{};
  }

  void close(int fd) override {
    if (static_cast<size_t>(fd) < regs_.size()) {
      Reg& r = regs_[static_cast<size_t>(fd)];
      if (r.registered) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
      r = Reg{};
    }
    ::close(fd);
  }

  void watch_doorbell(Completion* c) override { doorbell_ = c; }

  void wake() override {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(efd_, &one, sizeof one);
  }

  void ring(Backend& target) override { target.wake(); }

  int wait(int timeout_ms) override {
    int n = run_pending();
    epoll_event evs[256];
    int got = ::epoll_wait(epfd_, evs, 256, n > 0 ? 0 : timeout_ms);
    for (int i = 0; i < got; ++i) {
      void* tag = evs[i].data.ptr;
      if (tag == &efd_tag_) {
        uint64_t v;
        [[maybe_unused]] ssize_t rn = ::read(efd_, &v, sizeof v);
        if (doorbell_ != nullptr) doorbell_->complete(Event{});
        ++n;
        continue;
      }
      if (tag == &pool_tag_) {
        n += pool_.drain();
        continue;
      }
      int fd = static_cast<int>(reinterpret_cast<intptr_t>(tag));
      if (static_cast<size_t>(fd) < regs_.size() &&
          regs_[static_cast<size_t>(fd)].poll != nullptr) {
        pending_polls_.push_back(fd);
      }
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
        pending_reads_.push_back(fd);
      if (evs[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) pending_writes_.push_back(fd);
    }
    n += run_pending();
    return n;
  }

 private:
  struct Reg {
    Completion* in = nullptr;       // accept or recv
    Completion* out = nullptr;      // send
    Completion* poll = nullptr;     // a one-shot readiness wait
    Completion* connect = nullptr;  // a connect in progress
    uint32_t poll_events = 0;
    const char* out_p = nullptr;
    size_t out_n = 0;
    bool listener = false;
    bool accept_one = false;  // AcceptMode::kOne: the accept ends after a connection
    bool registered = false;
    uint32_t events = 0;
  };

  Reg& reg(int fd) {
    if (static_cast<size_t>(fd) >= regs_.size()) regs_.resize(static_cast<size_t>(fd) * 2 + 64);
    return regs_[static_cast<size_t>(fd)];
  }

  void add(int fd, uint32_t events, void* tag) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = tag;
    ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
  }

  // Edge-triggered interest in what the registration waits for.
  void update(int fd) {
    Reg& r = reg(fd);
    uint32_t want = EPOLLET | EPOLLRDHUP;
    if (r.in != nullptr) want |= EPOLLIN;
    if (r.out != nullptr || r.connect != nullptr) want |= EPOLLOUT;
    if (r.poll != nullptr && (r.poll_events & POLLIN)) want |= EPOLLIN;
    if (r.poll != nullptr && (r.poll_events & POLLOUT)) want |= EPOLLOUT;
    epoll_event ev{};
    ev.events = want;
    ev.data.ptr = reinterpret_cast<void*>(static_cast<intptr_t>(fd));
    if (!r.registered) {
      ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
      r.registered = true;
    } else if (r.events != want) {
      ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
    }
    r.events = want;
  }

  int run_pending() {
    int n = 0;
    while (!finished_.empty()) {
      auto fs = std::move(finished_);
      finished_.clear();
      for (auto [c, res] : fs) {
        Event ev;
        ev.res = res;
        c->complete(ev);
        ++n;
      }
    }
    while (!pending_polls_.empty()) {
      auto fds = std::move(pending_polls_);
      pending_polls_.clear();
      for (int fd : fds) n += do_poll(fd);
    }
    while (!pending_reads_.empty() || !pending_writes_.empty()) {
      auto reads = std::move(pending_reads_);
      pending_reads_.clear();
      for (int fd : reads) n += do_read(fd);
      auto writes = std::move(pending_writes_);
      pending_writes_.clear();
      for (int fd : writes) n += do_write(fd);
    }
    return n;
  }

  int do_read(int fd) {
    if (static_cast<size_t>(fd) >= regs_.size()) return 0;
    int n = 0;
    // At most a few rounds per readiness, so one busy peer cannot starve the
    // others; the rest is picked up on the next wait().
    for (int round = 0; round < 16; ++round) {
      Reg& r = regs_[static_cast<size_t>(fd)];
      Completion* c = r.in;
      if (c == nullptr) return n;
      Event ev;
      if (r.listener) {
        int cfd = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
          if (errno == EAGAIN || errno == EINTR) return n;
          ev.res = -errno;
          ++n;
          if (errno == ECONNABORTED) {
            ev.more = true;
            c->complete(ev);
            continue;
          }
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            // Out of descriptors: report, and wait for the next connection's
            // edge instead of spinning.
            ev.more = true;
            c->complete(ev);
            return n;
          }
          // EINVAL after shutdown(), or a broken socket: the accept ends.
          ev.more = false;
          r.in = nullptr;
          c->complete(ev);
          return n;
        } else {
          ev.res = cfd;
          ev.more = !r.accept_one;
          if (r.accept_one) r.in = nullptr;
        }
        ++n;
        c->complete(ev);
        continue;
      }
      ssize_t got = ::recv(fd, buf_, kRecvBytes, MSG_DONTWAIT);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) return n;
      ++n;
      if (got > 0) {
        ev.res = static_cast<int>(got);
        ev.more = true;
        ev.data = buf_;
        ev.has_buf = true;
        c->complete(ev);
        continue;
      }
      ev.res = got == 0 ? 0 : -errno;
      ev.more = false;
      regs_[static_cast<size_t>(fd)].in = nullptr;
      c->complete(ev);
      return n;
    }
    pending_reads_.push_back(fd);
    return n;
  }

  int do_poll(int fd) {
    if (static_cast<size_t>(fd) >= regs_.size()) return 0;
    Reg& r = regs_[static_cast<size_t>(fd)];
    Completion* c = r.poll;
    if (c == nullptr) return 0;
    pollfd p{fd, static_cast<short>(r.poll_events), 0};
    if (::poll(&p, 1, 0) <= 0 || p.revents == 0) return 0;  // wait for the edge
    r.poll = nullptr;
    update(fd);
    Event ev;
    ev.res = p.revents;
    c->complete(ev);
    return 1;
  }

  int do_write(int fd) {
    if (static_cast<size_t>(fd) >= regs_.size()) return 0;
    Reg& r = regs_[static_cast<size_t>(fd)];
    if (Completion* cc = r.connect; cc != nullptr) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == EINPROGRESS) return 0;
      r.connect = nullptr;
      update(fd);
      Event ev;
      ev.res = -err;
      cc->complete(ev);
      return 1;
    }
    Completion* c = r.out;
    if (c == nullptr) return 0;
    ssize_t sent = ::send(fd, r.out_p, r.out_n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0 && errno == EAGAIN) {
      update(fd);  // wait for EPOLLOUT
      return 0;
    }
    Event ev;
    ev.res = sent >= 0 ? static_cast<int>(sent) : -errno;
    r.out = nullptr;
    if (r.events & EPOLLOUT) update(fd);
    c->complete(ev);
    return 1;
  }

  int epfd_ = -1;
  int efd_ = -1;
  char efd_tag_ = 0;
  char pool_tag_ = 0;
  Completion* doorbell_ = nullptr;
  std::vector<Reg> regs_;
  std::vector<int> pending_reads_;
  std::vector<int> pending_polls_;
  // Completions decided outside the event loop (cancels, immediate connects).
  std::vector<std::pair<Completion*, int>> finished_;
  std::vector<int> pending_writes_;
  char buf_[kRecvBytes];

  // Several workers, so fsyncs of different files overlap as they do in
  // io_uring's io-wq.
  BlockingPool pool_{kFsyncWorkers};
};

}  // namespace

std::unique_ptr<Backend> make_epoll_backend(std::string* why) {
  auto b = std::make_unique<EpollBackend>();
  if (b->init(why) != 0) return nullptr;
  return b;
}

}  // namespace ringmail::engine
