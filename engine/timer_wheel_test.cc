#include "engine/timer_wheel.h"

#include <gtest/gtest.h>

#include <vector>

namespace ringmail::engine {
namespace {

struct T : TimerWheel::Node {
  int id = 0;
};

TEST(TimerWheel, FiresAtDeadlineNotBefore) {
  TimerWheel w(100, 8);
  T a, b, c;
  a.id = 1;
  b.id = 2;
  c.id = 3;
  w.schedule(&a, 103);
  w.schedule(&b, 101);
  w.schedule(&c, 120);  // more than one lap away
  std::vector<int> fired;
  auto f = [&](TimerWheel::Node* n) { fired.push_back(static_cast<T*>(n)->id); };
  w.advance(100, f);
  EXPECT_TRUE(fired.empty());
  w.advance(102, f);
  EXPECT_EQ(fired, std::vector<int>{2});
  w.advance(111, f);
  EXPECT_EQ(fired, (std::vector<int>{2, 1}));
  EXPECT_EQ(w.size(), 1u);
  w.advance(120, f);
  EXPECT_EQ(fired, (std::vector<int>{2, 1, 3}));
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, RescheduleAndCancel) {
  TimerWheel w(0);
  T a;
  w.schedule(&a, 5);
  w.schedule(&a, 50);
  w.cancel(&a);
  w.cancel(&a);
  int fired = 0;
  w.advance(100, [&](TimerWheel::Node*) { ++fired; });
  EXPECT_EQ(fired, 0);
}

TEST(TimerWheel, FireMayRescheduleItself) {
  TimerWheel w(0, 4);
  T a;
  w.schedule(&a, 1);
  int fired = 0;
  w.advance(10, [&](TimerWheel::Node* n) {
    if (++fired < 3) w.schedule(n, 2 * fired + 1);
  });
  EXPECT_EQ(fired, 3);
}

TEST(TimerWheel, PastDeadlineFiresOnNextTick) {
  TimerWheel w(50);
  T a;
  w.schedule(&a, 10);
  int fired = 0;
  w.advance(51, [&](TimerWheel::Node*) { ++fired; });
  EXPECT_EQ(fired, 1);
}

}  // namespace
}  // namespace ringmail::engine
