#include "engine/metrics.h"

#include <gtest/gtest.h>

#include <string>

#include "proto/outcome.h"

namespace ringmail::engine {
namespace {

std::map<std::string, OutboundQueue::DomainSummary> domains(
    std::initializer_list<std::pair<const char*, uint64_t>> recipients) {
  std::map<std::string, OutboundQueue::DomainSummary> m;
  for (const auto& [d, r] : recipients) {
    auto& ds = m[d];
    ds.recipients = r;
    ds.messages = r;
    ds.bytes = r * 100;
  }
  return m;
}

TEST(TopDestinations, LargestFirstThenTheRestAsOther) {
  const auto rows = top_destinations(
      domains({{"a.test", 1}, {"b.test", 5}, {"c.test", 3}, {"d.test", 3}, {"e.test", 2}}), 2);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].destination, "b.test");
  EXPECT_EQ(rows[1].destination, "c.test");  // a tie goes by name
  EXPECT_EQ(rows[2].destination, "other");
  EXPECT_EQ(rows[2].recipients, 3u + 2 + 1);
  EXPECT_EQ(rows[2].messages, 3u + 2 + 1);
  EXPECT_EQ(rows[2].bytes, 600u);
}

TEST(TopDestinations, NoOtherWhenAllFit) {
  const auto rows = top_destinations(domains({{"a.test", 1}, {"b.test", 2}}), 2);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].destination, "b.test");
  EXPECT_EQ(rows[1].destination, "a.test");
  EXPECT_TRUE(top_destinations({}, 20).empty());
}

TEST(TopDestinations, ZeroNamesNoneAndSumsAll) {
  const auto rows = top_destinations(domains({{"a.test", 1}, {"b.test", 2}}), 0);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].destination, "other");
  EXPECT_EQ(rows[0].recipients, 3u);
}

TEST(Cause, NamesAreTheMetricsLabels) {
  EXPECT_STREQ(proto::cause_name(proto::Cause::kReply), "reply");
  EXPECT_STREQ(proto::cause_name(proto::Cause::kDns), "dns");
  EXPECT_STREQ(proto::cause_name(proto::Cause::kConnect), "connect");
  EXPECT_STREQ(proto::cause_name(proto::Cause::kTls), "tls");
  EXPECT_STREQ(proto::cause_name(proto::Cause::kTimeout), "timeout");
  EXPECT_STREQ(proto::cause_name(proto::Cause::kOther), "other");
  EXPECT_EQ(size_t(proto::Cause::kOther) + 1, proto::kCauses);
}

}  // namespace
}  // namespace ringmail::engine
