#include "storage/crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace ringmail::storage {
namespace {

TEST(Crc32c, KnownVector) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c_portable("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(""), 0u);
}

TEST(Crc32c, HardwareMatchesPortableAndChains) {
  std::mt19937 rng(7);
  for (size_t n = 0; n < 300; ++n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    EXPECT_EQ(crc32c(s), crc32c_portable(s)) << n;
    size_t cut = n / 3;
    EXPECT_EQ(crc32c(s.substr(cut), crc32c(s.substr(0, cut))), crc32c(s)) << n;
  }
}

}  // namespace
}  // namespace ringmail::storage
