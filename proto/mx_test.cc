#include "proto/mx.h"

#include <gtest/gtest.h>

#include <set>

namespace ringmail::proto {
namespace {

using V = std::vector<std::string>;

TEST(Mx, OrderedByPreference) {
  auto p = plan_mx("example.test", {{20, "MX2.example.test."}, {10, "mx1.example.test"}}, "", 1);
  EXPECT_EQ(p.kind, MxPlan::Kind::kHosts);
  EXPECT_EQ(p.hosts, (V{"mx1.example.test", "mx2.example.test"}));
}

TEST(Mx, NoMxMeansTheDomainItself) {
  auto p = plan_mx("Example.TEST.", {}, "", 1);
  EXPECT_EQ(p.kind, MxPlan::Kind::kImplicit);
  EXPECT_EQ(p.hosts, (V{"example.test"}));
}

TEST(Mx, NullMx) {
  EXPECT_EQ(plan_mx("x.test", {{0, "."}}, "", 1).kind, MxPlan::Kind::kNullMx);
  EXPECT_EQ(plan_mx("x.test", {{0, ""}}, "", 1).kind, MxPlan::Kind::kNullMx);
  // "." among real hosts is skipped, not a null MX.
  auto p = plan_mx("x.test", {{0, "."}, {10, "mx.x.test"}}, "", 1);
  EXPECT_EQ(p.kind, MxPlan::Kind::kHosts);
  EXPECT_EQ(p.hosts, (V{"mx.x.test"}));
}

TEST(Mx, EqualPreferencesAreShuffled) {
  std::vector<MxRecord> recs{{10, "a.test"}, {10, "b.test"}, {10, "c.test"}, {20, "z.test"}};
  std::set<std::string> firsts;
  for (uint64_t seed = 0; seed < 64; ++seed) {
    auto p = plan_mx("x.test", recs, "", seed);
    ASSERT_EQ(p.hosts.size(), 4u);
    EXPECT_EQ(p.hosts.back(), "z.test");  // never before a better preference
    firsts.insert(p.hosts.front());
  }
  EXPECT_EQ(firsts.size(), 3u);  // each equal host comes first sometimes
  EXPECT_EQ(plan_mx("x.test", recs, "", 7).hosts, plan_mx("x.test", recs, "", 7).hosts);
}

TEST(Mx, OurselvesAndWorseAreDropped) {
  auto p = plan_mx("x.test", {{10, "backup.test"}, {5, "primary.test"}, {10, "relay.me"}},
                   "RELAY.me", 1);
  EXPECT_EQ(p.hosts, (V{"primary.test"}));
  auto loop = plan_mx("x.test", {{10, "relay.me"}, {20, "other.test"}}, "relay.me", 1);
  EXPECT_EQ(loop.kind, MxPlan::Kind::kLoop);
  EXPECT_TRUE(loop.hosts.empty());
}

TEST(Mx, DuplicatesOnce) {
  auto p = plan_mx("x.test", {{10, "a.test"}, {20, "A.test."}}, "", 1);
  EXPECT_EQ(p.hosts, (V{"a.test"}));
}

}  // namespace
}  // namespace ringmail::proto
