#include "engine/webhooks.h"

#include <gtest/gtest.h>

namespace ringmail::engine {
namespace {

TEST(Webhooks, SignatureIsHexHmacSha256OfTheBody) {
  // RFC 4231, test case 2.
  EXPECT_EQ(webhook_signature("Jefe", "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

}  // namespace
}  // namespace ringmail::engine
