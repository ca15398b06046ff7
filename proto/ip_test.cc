#include "proto/ip.h"

#include <gtest/gtest.h>

namespace ringmail::proto {
namespace {

TEST(Ip, ParsesAndPrintsCanonically) {
  const std::pair<std::string, std::string> cases[] = {
      {"192.0.2.1", "192.0.2.1"},
      {"0.0.0.0", "0.0.0.0"},
      {"2001:DB8::CB01", "2001:db8::cb01"},
      {"::", "::"},
      {"::1", "::1"},
      {"1::", "1::"},
      {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},     // RFC 5952 4.2.3: the first run
      {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},  // 4.2.2: one group stays
      {"::ffff:1.2.3.4", "::ffff:102:304"},
      {"CAFE:BABE::192.168.218.40", "cafe:babe::c0a8:da28"},
      {"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"},
  };
  for (const auto& [in, want] : cases) {
    const auto ip = parse_ip(in);
    ASSERT_TRUE(ip) << in;
    EXPECT_EQ(ip->to_string(), want) << in;
    EXPECT_EQ(parse_ip(ip->to_string()), ip) << in;
  }
}

TEST(Ip, RejectsMalformedText) {
  for (const char* bad : {"",
                          "1.2.3",
                          "1.2.3.4.5",
                          "256.1.1.1",
                          "01.2.3.4",
                          "1.2.3.4/32",
                          "1..2.3",
                          ":",
                          ":::",
                          "1:2",
                          "1::2::3",
                          "12345::",
                          "1:2:3:4:5:6:7:8:9",
                          "1:2:3:4:5:6:7::8:9",
                          ":1::",
                          "1:",
                          "::g",
                          "::1.2.3",
                          "[::1]",
                          "1:2:3:4:5:6:7:1.2.3.4",
                          "fe80::1%eth0"}) {
    EXPECT_FALSE(parse_ip(bad)) << bad;
  }
}

TEST(Ip, MappedAddressesUnmapToIpv4) {
  const auto mapped = parse_ip("::FFFF:1.2.3.4");
  ASSERT_TRUE(mapped);
  EXPECT_TRUE(mapped->is_v4_mapped());
  EXPECT_EQ(mapped->unmapped(), parse_ip("1.2.3.4"));
  EXPECT_FALSE(parse_ip("::1.2.3.4")->is_v4_mapped());  // IPv4-compatible, deprecated
  EXPECT_EQ(parse_ip("2001:db8::1")->unmapped(), parse_ip("2001:db8::1"));
}

TEST(Ip, Prefixes) {
  const auto a = *parse_ip("192.0.2.130");
  EXPECT_TRUE(same_prefix(a, *parse_ip("192.0.2.128"), 25));
  EXPECT_FALSE(same_prefix(a, *parse_ip("192.0.2.0"), 25));
  EXPECT_TRUE(same_prefix(a, *parse_ip("10.0.0.0"), 0));
  EXPECT_FALSE(same_prefix(a, *parse_ip("192.0.2.131"), 32));
  EXPECT_FALSE(same_prefix(a, *parse_ip("::"), 0));  // families never match
  const auto b = *parse_ip("cafe:babe:8000::");
  EXPECT_TRUE(same_prefix(b, *parse_ip("cafe:babe::"), 32));
  EXPECT_FALSE(same_prefix(b, *parse_ip("cafe:babe::"), 33));
  EXPECT_TRUE(same_prefix(b, b, 128));
}

}  // namespace
}  // namespace ringmail::proto
