// Which [[listener]] takes which socket systemd passed (plan_sockets).
#include "engine/socket_activation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ringmail::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

config::ListenerConfig listener(const std::string& address, const std::string& kind = "smtp") {
  config::ListenerConfig l;
  l.address = address;
  EXPECT_TRUE(config::parse_listen_address(address, l.addr, l.addr_len)) << address;
  if (kind == "submission") l.kind = proto::ListenerKind::kSubmission;
  if (kind == "submissions") {
    l.kind = proto::ListenerKind::kSubmission;
    l.implicit_tls = true;
  }
  if (kind == "http") l.http = true;
  return l;
}

PassedSocket passed(const std::string& address, bool v6only = true) {
  PassedSocket p;
  EXPECT_TRUE(config::parse_listen_address(address, p.addr, p.addr_len)) << address;
  p.v6only = v6only;
  return p;
}

TEST(PlanSockets, ExactAddressAndPortTakeTheSocket) {
  const auto plan = plan_sockets(
      {listener("127.0.0.1:25"), listener("[::1]:25"), listener("127.0.0.1:587", "submission")},
      {passed("127.0.0.1:587"), passed("127.0.0.1:25")});
  ASSERT_TRUE(plan) << plan.error();
  EXPECT_THAT(plan->for_listener, ElementsAre(1, -1, 0));  // [::1]:25 binds its own
  EXPECT_TRUE(plan->unused.empty());
}

TEST(PlanSockets, AnotherAddressOrPortIsNoMatch) {
  const auto plan = plan_sockets(
      {listener("127.0.0.1:25"), listener("0.0.0.0:587")},
      {passed("127.0.0.2:25"), passed("127.0.0.1:26"), passed("0.0.0.0:25"), passed("[::]:587")});
  ASSERT_TRUE(plan) << plan.error();
  EXPECT_THAT(plan->for_listener, ElementsAre(-1, -1));
  EXPECT_THAT(plan->unused, ElementsAre(0, 1, 2, 3));
}

// ringmail init writes 0.0.0.0:25 and [::]:25; the socket unit may give
// either two sockets (BindIPv6Only=ipv6-only) or one that takes both.
TEST(PlanSockets, WildcardsWithSeparateSockets) {
  const auto plan = plan_sockets({listener("0.0.0.0:25"), listener("[::]:25")},
                                 {passed("[::]:25"), passed("0.0.0.0:25")});
  ASSERT_TRUE(plan) << plan.error();
  EXPECT_THAT(plan->for_listener, ElementsAre(1, 0));
  EXPECT_TRUE(plan->unused.empty());
}

TEST(PlanSockets, DualStackSocketServesTheIpv4WildcardToo) {
  const auto both = plan_sockets({listener("0.0.0.0:25"), listener("[::]:25")},
                                 {passed("[::]:25", /*v6only=*/false)});
  ASSERT_TRUE(both) << both.error();
  EXPECT_THAT(both->for_listener, ElementsAre(0, 0));
  // Only the IPv4 listener configured: the dual-stack socket still serves it.
  const auto v4 = plan_sockets({listener("0.0.0.0:25")}, {passed("[::]:25", false)});
  ASSERT_TRUE(v4) << v4.error();
  EXPECT_THAT(v4->for_listener, ElementsAre(0));
  // An IPv6-only socket does not; nor does a dual-stack one on another
  // port, or for a specific IPv4 address.
  const auto only6 = plan_sockets({listener("0.0.0.0:25"), listener("127.0.0.1:26")},
                                  {passed("[::]:25", true), passed("[::]:26", false)});
  ASSERT_TRUE(only6) << only6.error();
  EXPECT_THAT(only6->for_listener, ElementsAre(-1, -1));
  EXPECT_THAT(only6->unused, ElementsAre(0, 1));
}

TEST(PlanSockets, ExactMatchBeatsTheDualStackSocket) {
  const auto plan =
      plan_sockets({listener("0.0.0.0:25")}, {passed("[::]:25", false), passed("0.0.0.0:25")});
  ASSERT_TRUE(plan) << plan.error();
  EXPECT_THAT(plan->for_listener, ElementsAre(1));
  EXPECT_THAT(plan->unused, ElementsAre(0));
}

TEST(PlanSockets, Ipv4MappedCountsAsIpv4) {
  const auto plan = plan_sockets({listener("127.0.0.1:2525")}, {passed("[::ffff:127.0.0.1]:2525")});
  ASSERT_TRUE(plan) << plan.error();
  EXPECT_THAT(plan->for_listener, ElementsAre(0));
}

TEST(PlanSockets, OneSocketForTwoKindsIsRefused) {
  const auto plan =
      plan_sockets({listener("0.0.0.0:587", "submission"), listener("[::]:587", "smtp")},
                   {passed("[::]:587", false)});
  ASSERT_FALSE(plan);
  EXPECT_THAT(plan.error(), HasSubstr("BindIPv6Only=ipv6-only"));
  EXPECT_THAT(plan.error(), HasSubstr("0.0.0.0:587 (submission) and [::]:587 (smtp)"));
}

TEST(PlanSockets, NothingPassedBindsEverything) {
  const auto plan = plan_sockets({listener("127.0.0.1:25"), listener("[::1]:25")}, {});
  ASSERT_TRUE(plan) << plan.error();
  EXPECT_THAT(plan->for_listener, ElementsAre(-1, -1));
  EXPECT_TRUE(plan->unused.empty());
}

TEST(PlanSockets, Describe) {
  EXPECT_EQ(describe(passed("127.0.0.1:2525")), "127.0.0.1:2525");
  EXPECT_EQ(describe(passed("[::]:25")), "[::]:25");
}

}  // namespace
}  // namespace ringmail::engine
