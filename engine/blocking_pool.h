// Worker threads for the few blocking calls a backend cannot issue
// asynchronously (every fsync on the epoll backend; syncfs and zero-filling
// a new spool segment on both, as io_uring has no syncfs operation and a
// 64 MiB write does not belong on a shard's ring). Owned by one shard's backend: only that
// shard's thread submits and drains; completions are delivered by drain(),
// on that thread, after the pool's eventfd became readable.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/backend.h"

namespace ringmail::engine {

class BlockingPool {
 public:
  explicit BlockingPool(int workers);
  ~BlockingPool();
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // Readable when finished jobs wait for drain(). -1 if set-up failed.
  int event_fd() const { return efd_; }
  void submit(storage::BlockingOp* op, Completion* c);
  // Completes every finished job; returns how many.
  int drain();

 private:
  struct Job {
    storage::BlockingOp* op;
    Completion* c;
    int res;
  };
  void work();

  int efd_ = -1;
  std::mutex mu_;  // guards the queues and stop_ (pool-private, not shard data)
  std::condition_variable cv_;
  std::deque<Job> todo_;
  std::deque<Job> done_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace ringmail::engine
