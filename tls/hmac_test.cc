// HMAC-SHA1 against RFC 2202's test cases, HMAC-SHA256 against RFC 4231's.
#include "tls/hmac.h"

#include <gtest/gtest.h>

#include "tls/test_hex.h"

namespace ringmail::tls {
namespace {

TEST(HmacSha1, Rfc2202) {
  EXPECT_EQ(hex(hmac_sha1(std::string(20, '\x0b'), "Hi There")),
            "b617318655057264e28bc0b6fb378c8ef146be00");
  EXPECT_EQ(hex(hmac_sha1("Jefe", "what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
  // A key longer than the block is hashed first.
  EXPECT_EQ(hex(hmac_sha1(std::string(80, '\xaa'),
                          "Test Using Larger Than Block-Size Key - Hash Key First")),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112");
}

TEST(HmacSha1, EmptyKeyAndData) {
  EXPECT_EQ(hex(hmac_sha1("", "")), "fbdb1d1b18aa6c08324b7d64b71fb76370690e1d");
}

TEST(HmacSha256, Rfc4231) {
  EXPECT_EQ(hex(hmac_sha256(std::string(20, '\x0b'), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

}  // namespace
}  // namespace ringmail::tls
