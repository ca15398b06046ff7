// A hashed timing wheel with one-second slots for connection deadlines
// (idle, command and data timeouts). Insert, move and remove are O(1); a tick
// visits one slot. Entries are intrusive, owned by the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ringmail::engine {

class TimerWheel {
 public:
  struct Node {
    int64_t deadline_s = 0;
    Node* prev = nullptr;
    Node* next = nullptr;
    bool linked() const { return prev != nullptr; }
  };

  explicit TimerWheel(int64_t now_s, size_t slots = 1024);
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // (Re)schedules `n` to expire at `deadline_s`.
  void schedule(Node* n, int64_t deadline_s);
  void cancel(Node* n);

  // Advances to `now_s` and calls fire(node) for every node whose deadline
  // has passed. fire() may schedule or cancel any node.
  template <typename F>
  void advance(int64_t now_s, F&& fire) {
    while (current_s_ < now_s) {
      ++current_s_;
      Node& head = slots_[static_cast<size_t>(current_s_) % slots_.size()];
      // Detach the slot, so fire() can reschedule into it safely.
      Node pending;
      if (head.next != &head) {
        pending.next = head.next;
        pending.prev = head.prev;
        pending.next->prev = &pending;
        pending.prev->next = &pending;
        head.next = head.prev = &head;
      } else {
        pending.next = pending.prev = &pending;
      }
      while (pending.next != &pending) {
        Node* n = pending.next;
        unlink(n);
        if (n->deadline_s <= current_s_) {
          fire(n);
        } else {
          link(n);  // a later lap of the wheel
        }
      }
    }
  }

  size_t size() const { return size_; }

 private:
  void link(Node* n);
  void unlink(Node* n);

  std::vector<Node> slots_;  // list heads
  int64_t current_s_;
  size_t size_ = 0;
};

// A timer of a shard's wheel: `fire` runs on the shard's thread.
struct TimerEntry : TimerWheel::Node {
  void (*fire)(TimerEntry* t) = nullptr;
};

}  // namespace ringmail::engine
