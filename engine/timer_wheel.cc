#include "engine/timer_wheel.h"

namespace ringmail::engine {

TimerWheel::TimerWheel(int64_t now_s, size_t slots) : slots_(slots), current_s_(now_s) {
  for (auto& h : slots_) h.next = h.prev = &h;
}

void TimerWheel::link(Node* n) {
  // A deadline already past fires on the next tick.
  int64_t at = n->deadline_s <= current_s_ ? current_s_ + 1 : n->deadline_s;
  Node& head = slots_[static_cast<size_t>(at) % slots_.size()];
  n->next = &head;
  n->prev = head.prev;
  head.prev->next = n;
  head.prev = n;
  ++size_;
}

void TimerWheel::unlink(Node* n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = nullptr;
  --size_;
}

void TimerWheel::schedule(Node* n, int64_t deadline_s) {
  if (n->linked()) unlink(n);
  n->deadline_s = deadline_s;
  link(n);
}

void TimerWheel::cancel(Node* n) {
  if (n->linked()) unlink(n);
}

}  // namespace ringmail::engine
