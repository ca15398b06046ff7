#include "proto/sasl.h"

#include <gtest/gtest.h>

namespace ringmail::proto {
namespace {

TEST(Base64, RoundTripsEveryLength) {
  std::string s;
  for (int n = 0; n < 70; ++n) {
    auto back = base64_decode(base64_encode(s));
    ASSERT_TRUE(back) << n;
    EXPECT_EQ(*back, s);
    s += static_cast<char>(n * 37);
  }
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");  // RFC 4648 section 10
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("f"), "Zg==");
}

TEST(Base64, RejectsWhatIsNotCanonical) {
  for (const char* bad : {"Zg", "Zg=", "Z===", "Zm9=v", "Zm 9v", "Zm9v\r\n",
                          "Zh==", "Zm9=", "====", "Zg==Zg==", "Z!9v"}) {
    EXPECT_FALSE(base64_decode(bad)) << bad;
  }
  EXPECT_EQ(*base64_decode(""), "");
}

TEST(SaslPlain, Decodes) {
  Credentials c;
  ASSERT_EQ(decode_plain(base64_encode(std::string("\0alice@example.test\0secret", 26)), &c),
            SaslError::kNone);
  EXPECT_EQ(c.authzid, "");
  EXPECT_EQ(c.user, "alice@example.test");
  EXPECT_EQ(c.password, "secret");
  ASSERT_EQ(decode_plain(base64_encode(std::string("bob\0bob\0pw", 10)), &c), SaslError::kNone);
  EXPECT_EQ(c.authzid, "bob");
}

TEST(SaslPlain, Malformed) {
  Credentials c;
  EXPECT_EQ(decode_plain("%%%%", &c), SaslError::kBadBase64);
  EXPECT_EQ(decode_plain(base64_encode("no-nuls"), &c), SaslError::kMalformed);
  EXPECT_EQ(decode_plain(base64_encode(std::string("\0user", 5)), &c), SaslError::kMalformed);
  EXPECT_EQ(decode_plain(base64_encode(std::string("\0\0pw", 4)), &c), SaslError::kMalformed);
  EXPECT_EQ(decode_plain(base64_encode(std::string("\0u\0", 3)), &c), SaslError::kMalformed);
  EXPECT_EQ(decode_plain(base64_encode(std::string("\0u\0p\0q", 6)), &c), SaslError::kMalformed);
  EXPECT_EQ(decode_plain(base64_encode(std::string("\0u\0", 3) + std::string(256, 'p')), &c),
            SaslError::kMalformed);
}

TEST(SaslLogin, Field) {
  std::string out;
  EXPECT_EQ(decode_login_field(base64_encode("alice"), &out), SaslError::kNone);
  EXPECT_EQ(out, "alice");
  EXPECT_EQ(decode_login_field("", &out), SaslError::kMalformed);
  EXPECT_EQ(decode_login_field("a", &out), SaslError::kBadBase64);
}

}  // namespace
}  // namespace ringmail::proto
