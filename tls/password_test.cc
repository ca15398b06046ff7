#include "tls/password.h"

#include <gtest/gtest.h>

#include <thread>

#include "tls/test_hex.h"

namespace ringmail::tls {
namespace {

// RFC 7914 section 12, second vector (N=1024, r=8, p=16, 64 bytes).
TEST(Scrypt, Rfc7914Vector) {
  std::string key;
  ASSERT_TRUE(scrypt_key("password", "NaCl", ScryptParams{10, 8, 16, 64}, &key));
  EXPECT_EQ(hex(key),
            "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
            "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640");
}

TEST(Scrypt, MatchesOnlyTheRightPassword) {
  std::string salt, key;
  ASSERT_TRUE(random_salt(&salt));
  EXPECT_EQ(salt.size(), 16u);
  const ScryptParams p{10, 8, 1, 32};
  ASSERT_TRUE(scrypt_key("secret", salt, p, &key));
  EXPECT_TRUE(scrypt_matches("secret", salt, p, key));
  EXPECT_FALSE(scrypt_matches("Secret", salt, p, key));
  EXPECT_FALSE(scrypt_matches("secret", salt, ScryptParams{11, 8, 1, 32}, key));
  EXPECT_FALSE(scrypt_matches("secret", salt, p, key.substr(1)));
}

TEST(Scrypt, RefusesHostileParameters) {
  std::string key;
  EXPECT_FALSE(scrypt_key("x", "salt", ScryptParams{30, 8, 1, 32}, &key));
  EXPECT_FALSE(scrypt_key("x", "salt", ScryptParams{14, 8, 1000, 32}, &key));
  EXPECT_FALSE(scrypt_key("x", "", ScryptParams{}, &key));
}

}  // namespace
}  // namespace ringmail::tls

namespace ringmail::tls {
namespace {

// The 16 MiB working area of the default cost is taken from the allocator
// once per thread, not at every check (no page faults per AUTH), and the
// results stay right.
TEST(Scrypt, ReusesItsWorkingAreaOnAThread) {
  std::string first, again;
  const ScryptParams p;  // the default: N = 2^14, r = 8
  ASSERT_TRUE(scrypt_key("secret", "0123456789abcdef", p, &first));
  const uint64_t before = scrypt_block_allocations();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(scrypt_key("secret", "0123456789abcdef", p, &again));
    EXPECT_EQ(again, first);
  }
  EXPECT_EQ(scrypt_block_allocations(), before);
  // Another thread takes its own once.
  std::thread t([&] {
    std::string k;
    EXPECT_TRUE(scrypt_key("secret", "0123456789abcdef", p, &k));
    EXPECT_EQ(k, first);
  });
  t.join();
  EXPECT_EQ(scrypt_block_allocations(), before + 1);
}

}  // namespace
}  // namespace ringmail::tls
