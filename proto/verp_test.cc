#include "proto/verp.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>

namespace ringmail::proto::verp {
namespace {

// A keyed stand-in for HMAC-SHA256 (the real one is in the engine).
std::string fake_hmac(std::string_view key, std::string_view data) {
  std::string out;
  uint64_t h = 1469598103934665603ull;
  for (int round = 0; round < 4; ++round) {
    for (char c : key) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    for (char c : data) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    for (int i = 0; i < 8; ++i) out += static_cast<char>(h >> (8 * i));
  }
  return out;
}

TEST(Verp, LocalPartRoundTrips) {
  const std::string l = local_part("1K20QG40AEE00", "Bob@Far.test", "s", fake_hmac);
  ASSERT_EQ(l.size(), 7u + 13 + 1 + 8);
  EXPECT_EQ(l.rfind("bounce+1K20QG40AEE00-", 0), 0u);
  auto p = parse_local_part(l);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->queue_id, "1K20QG40AEE00");
  EXPECT_EQ(p->hash, hash("1K20QG40AEE00", "bob@far.test", "s", fake_hmac));
  // Lower-cased on the way back: still ours.
  std::string lower = l;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto q = parse_local_part(lower);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->queue_id, "1K20QG40AEE00");
  EXPECT_EQ(q->hash, p->hash);
}

TEST(Verp, HashDependsOnEveryField) {
  const std::string h = hash("1K20QG40AEE00", "bob@far.test", "s", fake_hmac);
  EXPECT_EQ(h, hash("1k20qg40aee00", "BOB@far.test", "s", fake_hmac));
  EXPECT_NE(h, hash("1K20QG40AEE01", "bob@far.test", "s", fake_hmac));
  EXPECT_NE(h, hash("1K20QG40AEE00", "bob@far.tesu", "s", fake_hmac));
  EXPECT_NE(h, hash("1K20QG40AEE00", "bob@far.test", "t", fake_hmac));
  EXPECT_EQ(hash("x", "y", "s", [](std::string_view, std::string_view) { return std::string(); }),
            "");
}

TEST(Verp, OtherLocalPartsAreNotOurs) {
  for (const char* l : {"bounce", "bounce+", "bob+1K20QG40AEE00-abcdefgh",
                        "bounce+1K20QG40AEE00-abcdefg", "bounce+1K20QG40AEE00_abcdefgh",
                        "bounce+1K20QG40AEE0I-abcdefgh", "bounce+1K20QG40AEE00-abcdefghi"}) {
    EXPECT_FALSE(parse_local_part(l)) << l;
  }
}

}  // namespace
}  // namespace ringmail::proto::verp
