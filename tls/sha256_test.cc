// SHA-256 backends against FIPS 180-4's examples and against wolfCrypt on
// every length 0..2048 with random chunk splits.
#include "tls/sha256.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace ringmail::tls {
namespace {

std::string hex(const Sha256Digest& d) {
  static const char* x = "0123456789abcdef";
  std::string s;
  for (uint8_t b : d) {
    s += x[b >> 4];
    s += x[b & 15];
  }
  return s;
}

class Sha256Test : public ::testing::TestWithParam<Sha256Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Sha256Backend::kShaNi && !cpu_features().sha_ni) GTEST_SKIP() << "no SHA-NI";
  }
};

TEST_P(Sha256Test, Fips180Examples) {
  EXPECT_EQ(hex(Sha256Job::hash("abc", GetParam())),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex(Sha256Job::hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", GetParam())),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(hex(Sha256Job::hash("", GetParam())),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256Job h(GetParam());
  const std::string a(1000, 'a');
  for (int i = 0; i < 1000; ++i) h.update(a);  // one million 'a'
  EXPECT_EQ(hex(h.finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(h.length(), 1000000u);
}

TEST_P(Sha256Test, SameAsWolfCryptForEveryLengthAndSplit) {
  std::mt19937_64 rng(42);
  std::string data(2048, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  for (size_t len = 0; len <= data.size(); ++len) {
    const std::string_view m(data.data(), len);
    const Sha256Digest want = Sha256Job::hash(m, Sha256Backend::kWolfCrypt);
    Sha256Job h(GetParam());
    size_t pos = 0;
    while (pos < len) {
      const size_t n = std::min<size_t>(len - pos, rng() % 150);
      h.update(m.substr(pos, n));
      pos += n;
    }
    ASSERT_EQ(hex(h.finish()), hex(want)) << "length " << len;
  }
}

TEST(Sha256, BackendResolution) {
  EXPECT_EQ(resolve(Sha256Backend::kWolfCrypt), Sha256Backend::kWolfCrypt);
  EXPECT_EQ(resolve(Sha256Backend::kAuto),
            cpu_features().sha_ni ? Sha256Backend::kShaNi : Sha256Backend::kWolfCrypt);
  EXPECT_STREQ(to_string(Sha256Backend::kShaNi), "sha-ni");
}

INSTANTIATE_TEST_SUITE_P(Backends, Sha256Test,
                         ::testing::Values(Sha256Backend::kWolfCrypt, Sha256Backend::kShaNi),
                         [](const auto& info) {
                           return std::string(info.param == Sha256Backend::kShaNi ? "ShaNi" : "WolfCrypt");
                         });

}  // namespace
}  // namespace ringmail::tls
