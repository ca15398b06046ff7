#include "tls/wolfssl_info.h"

#include <gtest/gtest.h>

namespace ringmail::tls {
namespace {

TEST(WolfsslInfo, LinkedLibraryHasTheFeaturesWeNeed) {
  WolfsslInfo i = wolfssl_info();
  EXPECT_FALSE(i.version.empty());
  EXPECT_TRUE(i.tls13);
  EXPECT_TRUE(i.ed25519);
  EXPECT_NE(describe(i).find(i.version), std::string::npos);
}

#if RINGMAIL_WOLFSSL_BUNDLED
// The bundled build exists for its assembly: make sure that is what linked.
TEST(WolfsslInfo, BundledBuildHasAssembly) {
  WolfsslInfo i = wolfssl_info();
  EXPECT_EQ(i.version, "5.5.4");
  EXPECT_TRUE(i.aesni);
  EXPECT_TRUE(i.sp_asm);
}
#endif

}  // namespace
}  // namespace ringmail::tls
