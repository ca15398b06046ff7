#include "engine/spsc.h"

#include <gtest/gtest.h>

#include <thread>

namespace ringmail::engine {
namespace {

TEST(Spsc, FifoAndFull) {
  SpscQueue<int> q(4);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(q.push(int{i}));
  EXPECT_FALSE(q.push(99));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(q.pop(), i);
  EXPECT_FALSE(q.pop().has_value());
}

TEST(Spsc, TwoThreadsLoseNothing) {
  SpscQueue<uint64_t> q(64);
  constexpr uint64_t kN = 200000;
  std::thread producer([&] {
    for (uint64_t i = 1; i <= kN; ++i) {
      while (!q.push(uint64_t{i})) std::this_thread::yield();
    }
  });
  uint64_t expect = 1, sum = 0;
  while (expect <= kN) {
    if (auto v = q.pop()) {
      ASSERT_EQ(*v, expect);
      sum += *v;
      ++expect;
    }
  }
  producer.join();
  EXPECT_EQ(sum, kN * (kN + 1) / 2);
}

}  // namespace
}  // namespace ringmail::engine
