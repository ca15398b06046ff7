#include "engine/metrics.h"

#include <gtest/gtest.h>

#include <string>

#include "proto/outcome.h"

namespace ringmail::engine {
namespace {

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
