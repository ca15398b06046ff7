#include "proto/dns.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ringmail::proto {
namespace {

// A DNS response in wire form, built field by field.
class Msg {
 public:
  Msg& header(uint16_t qd, uint16_t an, uint16_t ns) {
    u16(0x1234);
    u16(0x8180);
    u16(qd);
    u16(an);
    u16(ns);
    u16(0);
    return *this;
  }
  Msg& name(const std::string& dotted) {
    size_t start = 0;
    while (start < dotted.size()) {
      size_t dot = dotted.find('.', start);
      if (dot == std::string::npos) dot = dotted.size();
      b_.push_back(static_cast<uint8_t>(dot - start));
      for (size_t i = start; i < dot; ++i) b_.push_back(static_cast<uint8_t>(dotted[i]));
      start = dot + 1;
    }
    b_.push_back(0);
    return *this;
  }
  Msg& pointer(uint16_t offset) {
    u16(static_cast<uint16_t>(0xC000 | offset));
    return *this;
  }
  Msg& question(const std::string& n, uint16_t type) {
    name(n);
    u16(type);
    u16(1);
    return *this;
  }
  // A record whose owner is the question's name (a pointer to offset 12).
  Msg& rr(uint16_t type, uint32_t ttl, const std::vector<uint8_t>& rdata) {
    pointer(12);
    u16(type);
    u16(1);
    u32(ttl);
    u16(static_cast<uint16_t>(rdata.size()));
    b_.insert(b_.end(), rdata.begin(), rdata.end());
    return *this;
  }
  Msg& soa(uint32_t ttl, uint32_t minimum) {
    Msg rd;
    rd.name("ns1.example.test").pointer(12);
    for (uint32_t v : {1u, 7200u, 900u, 1209600u, minimum}) rd.u32(v);
    return rr(6, ttl, rd.b_);
  }
  Msg& u16(uint16_t v) {
    b_.push_back(static_cast<uint8_t>(v >> 8));
    b_.push_back(static_cast<uint8_t>(v));
    return *this;
  }
  Msg& u32(uint32_t v) {
    u16(static_cast<uint16_t>(v >> 16));
    return u16(static_cast<uint16_t>(v));
  }
  const std::vector<uint8_t>& bytes() const { return b_; }

 private:
  std::vector<uint8_t> b_;
};

const std::vector<uint8_t> kTxt = {5, 'v', '=', 's', 'p', 'f'};

TEST(DnsTtls, AnswerTakesTheSmallestRecordTtl) {
  Msg m;
  m.header(1, 3, 0)
      .question("example.test", 16)
      .rr(16, 300, kTxt)
      .rr(16, 60, kTxt)
      .rr(16, 900, kTxt);
  const auto t = read_ttls(m.bytes());
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->answer, 60u);
  EXPECT_FALSE(t->negative.has_value());
}

TEST(DnsTtls, NegativeAnswerUsesTheSoaMinimumOrItsTtl) {
  Msg a;
  a.header(1, 0, 1).question("nowhere.example.test", 1).soa(3600, 120);
  auto t = read_ttls(a.bytes());
  ASSERT_TRUE(t.has_value());
  EXPECT_FALSE(t->answer.has_value());
  EXPECT_EQ(t->negative, 120u);  // RFC 2308: the smaller of the two
  Msg b;
  b.header(1, 0, 1).question("nowhere.example.test", 1).soa(30, 3600);
  t = read_ttls(b.bytes());
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->negative, 30u);
}

TEST(DnsTtls, NoSoaMeansNoNegativeTtl) {
  Msg m;
  m.header(1, 0, 0).question("example.test", 16);
  const auto t = read_ttls(m.bytes());
  ASSERT_TRUE(t.has_value());
  EXPECT_FALSE(t->answer.has_value());
  EXPECT_FALSE(t->negative.has_value());
}

TEST(DnsTtls, TopBitTtlCountsAsZero) {
  Msg m;
  m.header(1, 1, 0).question("example.test", 16).rr(16, 0x80000001u, kTxt);
  EXPECT_EQ(read_ttls(m.bytes())->answer, 0u);
}

TEST(DnsTtls, TruncatedOrMalformedIsRefused) {
  Msg m;
  m.header(1, 1, 1).question("example.test", 16).rr(16, 300, kTxt).soa(60, 60);
  const auto& full = m.bytes();
  ASSERT_TRUE(read_ttls(full).has_value());
  for (size_t n = 0; n < full.size(); ++n) {
    EXPECT_FALSE(read_ttls(std::span(full.data(), n)).has_value()) << n;
  }
  // A reserved label type (0x40) in the question name.
  std::vector<uint8_t> bad = full;
  bad[12] = 0x41;
  EXPECT_FALSE(read_ttls(bad).has_value());
  // A SOA whose fields do not fill its RDATA exactly.
  Msg s;
  s.header(1, 0, 1).question("example.test", 1).rr(6, 60, {0, 0, 0, 0});
  EXPECT_FALSE(read_ttls(s.bytes()).has_value());
}

}  // namespace
}  // namespace ringmail::proto
