#include "storage/suppression.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <unordered_set>

namespace ringmail::storage {
namespace {

constexpr uint64_t kK0 = 0x0706050403020100ull, kK1 = 0x0f0e0d0c0b0a0908ull;

// The reference vectors of the SipHash paper's implementation (key
// 00..0f, message 00..n-1).
TEST(Suppression, SipHashVectors) {
  std::string msg;
  EXPECT_EQ(siphash24(kK0, kK1, msg), 0x726fdb47dd0e0e31ull);
  for (char c = 0; c < 15; ++c) msg.push_back(c);
  EXPECT_EQ(siphash24(kK0, kK1, msg), 0xa129ca6149be45e5ull);
}

// Against std::unordered_set: inserts, lookups and erases mixed, with
// the table growing through several sizes and erases shifting chains.
TEST(Suppression, SetAgreesWithAReferenceSet) {
  SuppressionSet set(1, 2);
  std::unordered_set<uint64_t> ref;
  std::mt19937_64 rng(42);
  for (int op = 0; op < 200000; ++op) {
    // Few distinct keys with small values, so chains collide and erases
    // hit keys that are there.
    const uint64_t k = rng() % 50000;
    switch (rng() % 3) {
      case 0:
        ASSERT_EQ(set.insert(k), ref.insert(k == 0 ? 1 : k).second) << op;
        break;
      case 1:
        ASSERT_EQ(set.erase(k), ref.erase(k == 0 ? 1 : k) == 1) << op;
        break;
      default:
        ASSERT_EQ(set.contains(k), ref.count(k == 0 ? 1 : k) == 1) << op;
    }
    ASSERT_EQ(set.size(), ref.size());
  }
  for (uint64_t k = 1; k < 50000; ++k) ASSERT_EQ(set.contains(k), ref.count(k) == 1) << k;
  EXPECT_LE(set.size() * 4, set.bytes() / 8 * 3);  // at most 3/4 full
}

TEST(Suppression, ScopesAndCase) {
  SuppressionSet set(7, 9);
  set.insert(set.key(kGlobalScope, "Bob@Example.ORG"));
  set.insert(set.key("news.example.com", "carol@example.net"));
  EXPECT_TRUE(set.suppressed("", "bob@example.org"));
  EXPECT_TRUE(set.suppressed("shop.example", "BOB@EXAMPLE.ORG"));
  EXPECT_TRUE(set.suppressed("News.Example.com", "carol@example.net"));
  EXPECT_FALSE(set.suppressed("shop.example", "carol@example.net"));
  EXPECT_FALSE(set.suppressed("", "carol@example.net"));
  EXPECT_FALSE(set.suppressed("news.example.com", "dave@example.net"));
  // Scope and address are not run together: "a" + "b@c" is not "ab" + "@c".
  EXPECT_NE(set.key("a", "b@c"), set.key("ab", "@c"));
  // Another hash key gives other keys.
  SuppressionSet other(8, 9);
  EXPECT_NE(set.key("*", "bob@example.org"), other.key("*", "bob@example.org"));
  // A long address hashes as well as a short one.
  const std::string long_address = std::string(400, 'x') + "@example.org";
  set.insert(set.key(kGlobalScope, long_address));
  EXPECT_TRUE(set.suppressed("", long_address));
}

TEST(Suppression, ChangeLinesRoundTrip) {
  SuppressionChange add{true, 1796600000, "*", "bob@example.org", "bounce: 550 5.1.1\r\nno"};
  const std::string line = format_suppression_change(add);
  EXPECT_EQ(line, "+ 1796600000 * bob@example.org bounce: 550 5.1.1  no\n");
  auto back = parse_suppression_change(line.substr(0, line.size() - 1));
  ASSERT_TRUE(back) << back.error();
  EXPECT_TRUE(back->add);
  EXPECT_EQ(back->unix_time, 1796600000);
  EXPECT_EQ(back->scope, "*");
  EXPECT_EQ(back->address, "bob@example.org");
  EXPECT_EQ(back->reason, "bounce: 550 5.1.1  no");
  SuppressionChange rm{false, 5, "news.example.com", "carol@example.net", "ignored"};
  EXPECT_EQ(format_suppression_change(rm), "- 5 news.example.com carol@example.net\n");
  auto r = parse_suppression_change("- 5 news.example.com carol@example.net");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->add);
  EXPECT_EQ(r->scope, "news.example.com");
}

TEST(Suppression, BadChangeLines) {
  for (const char* bad : {"", "+", "* 1 * a@b", "+ x * a@b", "+ -4 * a@b", "+ 1", "+ 1 *",
                          "+ 1 * nobody", "- 1 * a@b why"}) {
    EXPECT_FALSE(parse_suppression_change(bad)) << bad;
  }
  EXPECT_EQ(parse_suppression_change("+ 1 * nobody").error(), "no address (local@domain)");
}

}  // namespace
}  // namespace ringmail::storage
