#include "engine/auth.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace ringmail::engine {
namespace {

TEST(AuthFailures, CountsPerAddressInATenMinuteWindow) {
  AuthFailures f;
  EXPECT_EQ(f.count("[192.0.2.1]", 1000), 0u);
  EXPECT_EQ(f.note("[192.0.2.1]", 1000), 1u);
  EXPECT_EQ(f.note("[192.0.2.1]", 1100), 2u);
  EXPECT_EQ(f.note("[192.0.2.2]", 1100), 1u);
  EXPECT_EQ(f.count("[192.0.2.1]", 1100 + AuthFailures::kWindowS), 2u);
  EXPECT_EQ(f.count("[192.0.2.1]", 1101 + AuthFailures::kWindowS), 0u);
  EXPECT_EQ(f.note("[192.0.2.1]", 1101 + AuthFailures::kWindowS), 1u);  // starts again
}

// An IPv6 host has a /64 to choose addresses from: one count for all of it.
TEST(AuthFailures, IPv6CountsPerSlash64) {
  EXPECT_EQ(AuthFailures::key_of("[IPv6:2001:db8:1:2:3:4:5:6]"), "[IPv6:2001:db8:1:2::/64]");
  EXPECT_EQ(AuthFailures::key_of("[192.0.2.1]"), "[192.0.2.1]");
  EXPECT_EQ(AuthFailures::key_of("[IPv6:not an address]"), "[IPv6:not an address]");
  AuthFailures f;
  f.note("[IPv6:2001:db8:1:2::1]", 50);
  EXPECT_EQ(f.note("[IPv6:2001:db8:1:2:ffff::9]", 50), 2u);
  EXPECT_EQ(f.note("[IPv6:2001:db8:1:3::1]", 50), 1u);
}

// Regression (issue 19, defect 2): each shard counted alone, so N shards
// allowed N times the tries. One table, used from several threads.
TEST(AuthFailures, SharedByShardsOnSeveralThreads) {
  auto shared = std::make_shared<AuthFailures>();
  std::vector<std::thread> shards;
  for (int i = 0; i < 4; ++i) {
    shards.emplace_back([shared] {
      for (int j = 0; j < 250; ++j) shared->note("[198.51.100.7]", 10);
    });
  }
  for (auto& t : shards) t.join();
  EXPECT_EQ(shared->count("[198.51.100.7]", 10), 1000u);
}

}  // namespace
}  // namespace ringmail::engine
