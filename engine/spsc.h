// Bounded single-producer single-consumer queue: how shards (and the main
// thread) hand typed messages to a shard without locks. Exactly one thread
// pushes and exactly one thread pops.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>

namespace ringmail::engine {

template <typename T>
class SpscQueue {
 public:
  explicit SpscQueue(size_t capacity_pow2)
      : mask_(capacity_pow2 - 1), slots_(new T[capacity_pow2]) {}

  // Producer side. False when full: the producer keeps the item and retries.
  bool push(T&& v) {
    const size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_cache_ > mask_) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (tail - head_cache_ > mask_) return false;
    }
    slots_[tail & mask_] = std::move(v);
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Consumer side.
  std::optional<T> pop() {
    const size_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_cache_) {
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (head == tail_cache_) return std::nullopt;
    }
    T v = std::move(slots_[head & mask_]);
    head_.store(head + 1, std::memory_order_release);
    return v;
  }

 private:
  const size_t mask_;
  std::unique_ptr<T[]> slots_;
  alignas(64) std::atomic<size_t> head_{0};
  size_t tail_cache_ = 0;  // consumer's view of tail_
  alignas(64) std::atomic<size_t> tail_{0};
  size_t head_cache_ = 0;  // producer's view of head_
};

}  // namespace ringmail::engine
