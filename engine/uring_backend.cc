// io_uring backend: SINGLE_ISSUER | DEFER_TASKRUN ring, multishot accept and
// recv, one provided-buffer ring per shard, MSG_RING doorbells.
#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "engine/backend.h"
#include "engine/blocking_pool.h"
#include "engine/uring_compat.h"

namespace ringmail::engine {

std::unique_ptr<Backend> make_epoll_backend(std::string* why);

namespace {

constexpr unsigned kSqEntries = 1024;
constexpr unsigned kCqEntries = 16384;
constexpr unsigned kBufCount = 1024;   // provided receive buffers per shard
constexpr unsigned kBufBytes = 16384;  // 16 MiB of address space, touched on use
constexpr int kBufGroup = 0;

class UringBackend final : public Backend {
 public:
  ~UringBackend() override {
    if (br_ != nullptr) free_buf_ring(&ring_, br_, kBufCount, kBufGroup);
    if (bufs_ != nullptr) ::munmap(bufs_, size_t{kBufCount} * kBufBytes);
    if (ready_) io_uring_queue_exit(&ring_);
    if (efd_ >= 0) ::close(efd_);
  }

  int init(std::string* why) {
    io_uring_params p{};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = kCqEntries;
    int r = io_uring_queue_init_params(kSqEntries, &ring_, &p);
    if (r == -EINVAL) {
      // Kernels before 6.1 lack DEFER_TASKRUN; run without it.
      p = io_uring_params{};
      p.flags = IORING_SETUP_CQSIZE;
      p.cq_entries = kCqEntries;
      r = io_uring_queue_init_params(kSqEntries, &ring_, &p);
    }
    if (r < 0) {
      *why = std::string("io_uring_setup: ") + std::strerror(-r);
      return r;
    }
    ready_ = true;
    bufs_ = static_cast<char*>(::mmap(nullptr, size_t{kBufCount} * kBufBytes,
                                      PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0));
    if (bufs_ == MAP_FAILED) {
      bufs_ = nullptr;
      *why = "mmap of receive buffers failed";
      return -ENOMEM;
    }
    int err = 0;
    br_ = setup_buf_ring(&ring_, kBufCount, kBufGroup, &err);
    if (br_ == nullptr) {
      *why = std::string("io_uring_register_buf_ring: ") + std::strerror(-err);
      return err;
    }
    for (unsigned i = 0; i < kBufCount; ++i) {
      io_uring_buf_ring_add(br_, bufs_ + size_t{i} * kBufBytes, kBufBytes,
                            static_cast<unsigned short>(i), io_uring_buf_ring_mask(kBufCount),
                            static_cast<int>(i));
    }
    io_uring_buf_ring_advance(br_, kBufCount);
    efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd_ < 0) {
      *why = "eventfd failed";
      return -errno;
    }
    return 0;
  }

  config::BackendKind kind() const override { return config::BackendKind::kUring; }

  void accept(int listen_fd, Completion* c, AcceptMode mode) override {
    io_uring_sqe* sqe = sqe_for(c);
    if (mode == AcceptMode::kOne) {
      io_uring_prep_accept(sqe, listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } else {
      io_uring_prep_multishot_accept(sqe, listen_fd, nullptr, nullptr,
                                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    }
  }

  void recv(int fd, Completion* c) override {
    io_uring_sqe* sqe = sqe_for(c);
    io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufGroup;
  }

  void release(uint16_t bid) override {
    io_uring_buf_ring_add(br_, bufs_ + size_t{bid} * kBufBytes, kBufBytes, bid,
                          io_uring_buf_ring_mask(kBufCount), 0);
    io_uring_buf_ring_advance(br_, 1);
  }

  void send(int fd, const char* p, size_t n, Completion* c) override {
    io_uring_sqe* sqe = sqe_for(c);
    io_uring_prep_send(sqe, fd, p, n, MSG_NOSIGNAL);
  }

  void blocking(storage::BlockingOp* op, Completion* c) override {
    using Kind = storage::BlockingOp::Kind;
    if (op->kind == Kind::kFsync || op->kind == Kind::kDataSync) {
      io_uring_sqe* sqe = sqe_for(c);
      io_uring_prep_fsync(sqe, op->fd, op->kind == Kind::kDataSync ? IORING_FSYNC_DATASYNC : 0);
      return;
    }
    if (!pool_) {
      // A few workers: a segment's zero-fill or a password check must not
      // hold up a delivery's syncfs.
      pool_ = std::make_unique<BlockingPool>(kPoolWorkers);
      io_uring_sqe* sqe = get_sqe();
      io_uring_prep_poll_multishot(sqe, pool_->event_fd(), POLLIN);
      io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(&pool_mark_));
    }
    pool_->submit(op, c);
  }

  void poll(int fd, uint32_t events, Completion* c) override {
    io_uring_sqe* sqe = sqe_for(c);
    io_uring_prep_poll_add(sqe, fd, events);
  }

  void connect(int fd, const sockaddr* addr, socklen_t len, Completion* c) override {
    io_uring_sqe* sqe = sqe_for(c);
    io_uring_prep_connect(sqe, fd, addr, len);
  }

  void cancel(int, Completion* c) override {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel64(sqe, reinterpret_cast<uint64_t>(c), 0);
    io_uring_sqe_set_data64(sqe, 0);  // its own completion is ignored
  }

  void close(int fd) override { ::close(fd); }

  void watch_doorbell(Completion* c) override {
    doorbell_ = c;
    arm_eventfd();
  }

  void wake() override {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(efd_, &one, sizeof one);
  }

  void ring(Backend& target) override {
    if (target.kind() != config::BackendKind::kUring) {
      target.wake();
      return;
    }
    auto& t = static_cast<UringBackend&>(target);
    io_uring_sqe* sqe = get_sqe();
    // The target sees a CQE carrying its doorbell completion; ours is ignored.
    io_uring_prep_msg_ring(sqe, t.ring_.ring_fd, 0, reinterpret_cast<uint64_t>(&t.msg_ring_mark_),
                           0);
    io_uring_sqe_set_data64(sqe, 0);
  }

  int wait(int timeout_ms) override {
    __kernel_timespec ts{};
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = static_cast<long>(timeout_ms % 1000) * 1000000L;
    io_uring_cqe* cqe = nullptr;
    int r =
        io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, timeout_ms >= 0 ? &ts : nullptr, nullptr);
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY) return r;
    int n = 0;
    // Completions may queue new submissions; those go out on the next wait.
    while (true) {
      unsigned head;
      unsigned seen = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        dispatch(cqe);
      }
      if (seen == 0) break;
      io_uring_cq_advance(&ring_, seen);
      n += static_cast<int>(seen);
    }
    return n;
  }

 private:
  void dispatch(io_uring_cqe* cqe) {
    const uint64_t ud = io_uring_cqe_get_data64(cqe);
    if (ud == 0) return;  // our own MSG_RING send
    if (ud == reinterpret_cast<uint64_t>(&msg_ring_mark_)) {
      if (doorbell_ != nullptr) doorbell_->complete(Event{});
      return;
    }
    if (ud == reinterpret_cast<uint64_t>(&pool_mark_)) {
      if (!(cqe->flags & IORING_CQE_F_MORE)) {
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_poll_multishot(sqe, pool_->event_fd(), POLLIN);
        io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(&pool_mark_));
      }
      pool_->drain();
      return;
    }
    if (ud == reinterpret_cast<uint64_t>(&efd_mark_)) {
      uint64_t v;
      [[maybe_unused]] ssize_t rn = ::read(efd_, &v, sizeof v);
      if (!(cqe->flags & IORING_CQE_F_MORE)) arm_eventfd();
      if (doorbell_ != nullptr) doorbell_->complete(Event{});
      return;
    }
    Event ev;
    ev.res = cqe->res;
    ev.more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
      ev.has_buf = true;
      ev.buf_id = static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
      ev.data = bufs_ + size_t{ev.buf_id} * kBufBytes;
    }
    reinterpret_cast<Completion*>(ud)->complete(ev);
  }

  void arm_eventfd() {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_poll_multishot(sqe, efd_, POLLIN);
    io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(&efd_mark_));
  }

  io_uring_sqe* get_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (sqe == nullptr) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  io_uring_sqe* sqe_for(Completion* c) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(c));
    return sqe;
  }

  io_uring ring_{};
  bool ready_ = false;
  char* bufs_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  int efd_ = -1;
  Completion* doorbell_ = nullptr;
  char msg_ring_mark_ = 0;  // addresses used as user_data tags
  char efd_mark_ = 0;
  char pool_mark_ = 0;
  static constexpr int kPoolWorkers = 3;
  std::unique_ptr<BlockingPool> pool_;  // all but fsync; started on first use
};

}  // namespace

bool uring_available(std::string* why) {
  UringBackend probe;
  return probe.init(why) == 0;
}

std::unique_ptr<Backend> make_backend(config::BackendKind kind, std::string* why) {
  if (kind != config::BackendKind::kEpoll) {
    auto b = std::make_unique<UringBackend>();
    if (b->init(why) == 0) return b;
    if (kind == config::BackendKind::kUring) return nullptr;
  }
  return make_epoll_backend(why);
}

}  // namespace ringmail::engine
