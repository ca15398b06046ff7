#include "engine/client_limits.h"

#include <gtest/gtest.h>

namespace ringmail::engine {
namespace {

using V = ConnectionsPerClient::Verdict;

TEST(ClientKey, IPv4AsItIsIPv6ByItsSlash64) {
  EXPECT_EQ(client_key("[192.0.2.1]"), "[192.0.2.1]");
  EXPECT_EQ(client_key("[IPv6:2001:db8:1:2:3:4:5:6]"), "[IPv6:2001:db8:1:2::/64]");
  EXPECT_EQ(client_key("[IPv6:::1]"), "[IPv6:::/64]");
  EXPECT_EQ(client_key("[unknown]"), "[unknown]");
}

// Regression (issue 19, defect 5): one client could hold every connection.
TEST(ConnectionsPerClient, LimitsEachClientAndTheTotal) {
  ConnectionsPerClient c;
  c.set_total_max(5);
  EXPECT_EQ(c.try_add("[192.0.2.1]", 2), V::kOk);
  EXPECT_EQ(c.try_add("[192.0.2.1]", 2), V::kOk);
  EXPECT_EQ(c.try_add("[192.0.2.1]", 2), V::kClientFull);
  EXPECT_EQ(c.count("[192.0.2.1]"), 2u);
  EXPECT_EQ(c.try_add("[192.0.2.2]", 2), V::kOk);
  EXPECT_EQ(c.try_add("", 2), V::kOk);  // not limited per client
  EXPECT_EQ(c.try_add("", 2), V::kOk);
  EXPECT_EQ(c.total(), 5u);
  EXPECT_EQ(c.try_add("[192.0.2.3]", 2), V::kAllFull);
  EXPECT_EQ(c.count("[192.0.2.3]"), 0u);
  c.remove("[192.0.2.1]");
  EXPECT_EQ(c.count("[192.0.2.1]"), 1u);
  EXPECT_EQ(c.try_add("[192.0.2.1]", 2), V::kOk);
  c.remove("");
  EXPECT_EQ(c.total(), 4u);
}

}  // namespace
}  // namespace ringmail::engine
