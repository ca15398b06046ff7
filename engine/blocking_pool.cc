#include "engine/blocking_pool.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace ringmail::engine {

BlockingPool::BlockingPool(int workers) {
  efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { work(); });
}

BlockingPool::~BlockingPool() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& w : workers_) w.join();
  if (efd_ >= 0) ::close(efd_);
}

void BlockingPool::submit(storage::BlockingOp* op, Completion* c) {
  {
    std::lock_guard<std::mutex> g(mu_);
    todo_.push_back({op, c, 0});
  }
  cv_.notify_one();
}

void BlockingPool::work() {
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    cv_.wait(lk, [this] { return stop_ || !todo_.empty(); });
    if (stop_) return;
    Job job = todo_.front();
    todo_.pop_front();
    lk.unlock();
    job.res = storage::run_blocking_op(job.op);
    lk.lock();
    done_.push_back(job);
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(efd_, &one, sizeof one);
  }
}

int BlockingPool::drain() {
  uint64_t v;
  [[maybe_unused]] ssize_t rn = ::read(efd_, &v, sizeof v);
  std::deque<Job> done;
  {
    std::lock_guard<std::mutex> g(mu_);
    done.swap(done_);
  }
  for (auto& j : done) {
    Event ev;
    ev.res = j.res;
    j.c->complete(ev);
  }
  return static_cast<int>(done.size());
}

}  // namespace ringmail::engine
