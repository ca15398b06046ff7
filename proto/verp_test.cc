#include "proto/verp.h"

#include <gtest/gtest.h>

#include <cctype>

#include "proto/test_hmac.h"

namespace ringmail::proto::verp {
namespace {

using test_support::fake_hmac_sha256;

TEST(Verp, LocalPartRoundTrips) {
  const std::string l = local_part("1K20QG40AEE00", "Bob@Far.test", "s", fake_hmac_sha256);
  ASSERT_EQ(l.size(), 7u + 13 + 1 + 8);
  EXPECT_EQ(l.rfind("bounce+1K20QG40AEE00-", 0), 0u);
  auto p = parse_local_part(l);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->queue_id, "1K20QG40AEE00");
  EXPECT_EQ(p->hash, hash("1K20QG40AEE00", "bob@far.test", "s", fake_hmac_sha256));
  // Lower-cased on the way back: still ours.
  std::string lower = l;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto q = parse_local_part(lower);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->queue_id, "1K20QG40AEE00");
  EXPECT_EQ(q->hash, p->hash);
}

TEST(Verp, HashDependsOnEveryField) {
  const std::string h = hash("1K20QG40AEE00", "bob@far.test", "s", fake_hmac_sha256);
  EXPECT_EQ(h, hash("1k20qg40aee00", "BOB@far.test", "s", fake_hmac_sha256));
  EXPECT_NE(h, hash("1K20QG40AEE01", "bob@far.test", "s", fake_hmac_sha256));
  EXPECT_NE(h, hash("1K20QG40AEE00", "bob@far.tesu", "s", fake_hmac_sha256));
  EXPECT_NE(h, hash("1K20QG40AEE00", "bob@far.test", "t", fake_hmac_sha256));
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
