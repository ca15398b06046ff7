#include "engine/histogram.h"

#include <gtest/gtest.h>

#include <string>

namespace ringmail::engine {
namespace {

TEST(Histogram, CountsEachObservationInTheFirstBucketThatHoldsIt) {
  Histogram h{0.1, 1, 10};
  h.observe(0.05);
  h.observe(0.1);  // "le": a bound holds its own value
  h.observe(0.5);
  h.observe(10);
  h.observe(11);
  h.observe(1000);
  EXPECT_EQ(h.bounds(), 3u);
  EXPECT_EQ(h.bucket(0), 2u);
  EXPECT_EQ(h.bucket(1), 1u);
  EXPECT_EQ(h.bucket(2), 1u);
  EXPECT_EQ(h.bucket(3), 2u);  // +Inf
  EXPECT_EQ(h.count(), 6u);
  EXPECT_DOUBLE_EQ(h.sum(), 0.05 + 0.1 + 0.5 + 10 + 11 + 1000);
}

TEST(Histogram, TextHasCumulativeBucketsSumAndCount) {
  Histogram h{0.001, 0.01};
  h.observe(0.0005);
  h.observe(0.5);
  std::string out;
  h.append_text(&out, "x_seconds", "shard=\"1\"");
  EXPECT_EQ(out,
            "x_seconds_bucket{shard=\"1\",le=\"0.001\"} 1\n"
            "x_seconds_bucket{shard=\"1\",le=\"0.01\"} 1\n"
            "x_seconds_bucket{shard=\"1\",le=\"+Inf\"} 2\n"
            "x_seconds_sum{shard=\"1\"} 0.50049999999999994\n"
            "x_seconds_count{shard=\"1\"} 2\n");
}

TEST(Histogram, TextWithoutLabels) {
  Histogram h{1};
  std::string out;
  h.append_text(&out, "y", "");
  EXPECT_EQ(out, "y_bucket{le=\"1\"} 0\ny_bucket{le=\"+Inf\"} 0\ny_sum 0\ny_count 0\n");
}

}  // namespace
}  // namespace ringmail::engine
