#include "tls/api_token.h"

#include <gtest/gtest.h>

#include <set>

namespace ringmail::tls {
namespace {

TEST(ApiToken, HashIsSha256InLowerCaseHex) {
  // FIPS 180-2's "abc" vector.
  EXPECT_EQ(api_token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(api_token_hash("").size(), 64u);
}

TEST(ApiToken, NewTokensAreLongRandomAndUrlSafe) {
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    const std::string t = new_api_token();
    ASSERT_EQ(t.size(), 47u) << t;
    EXPECT_EQ(t.rfind("rmt_", 0), 0u) << t;
    for (char c : t.substr(4))
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << t;
    seen.insert(t);
  }
  EXPECT_EQ(seen.size(), 50u);
}

TEST(ApiToken, MatchesOnlyItsOwnHash) {
  const std::string t = new_api_token();
  const std::string h = api_token_hash(t);
  EXPECT_TRUE(api_token_matches(t, h));
  std::string upper = h;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(api_token_matches(t, upper));
  EXPECT_FALSE(api_token_matches(t + "x", h));
  EXPECT_FALSE(api_token_matches("", h));
  EXPECT_FALSE(api_token_matches(t, h.substr(1)));  // not a hash
  EXPECT_FALSE(api_token_matches(h, h));            // the hash is not the token
  EXPECT_FALSE(is_token_hash(std::string(64, 'g')));
  EXPECT_TRUE(is_token_hash(h));
}

}  // namespace
}  // namespace ringmail::tls
