// SHA-256 backends against FIPS 180-4's examples and against wolfCrypt on
// every length 0..2048 with random chunk splits.
#include "tls/sha256.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

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

// The 16-lane kernel and sha256_many() against wolfCrypt: messages of
// every length 0..2048 hashed 16 at a time with different lengths in the
// lanes, and the portable compression function.
TEST(Sha256, ManyAtOnceEveryLengthEveryLane) {
  if (!cpu_features().avx512) GTEST_SKIP() << "no AVX-512";
  std::mt19937_64 rng(9);
  std::string data(4096, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  std::vector<std::string_view> msgs;
  for (size_t len = 0; len <= 2048; ++len) {
    // Lanes start at different offsets and run different lengths.
    msgs.push_back(std::string_view(data).substr(len % 97, len));
  }
  for (auto b : {Sha256Backend::kAvx512x16, Sha256Backend::kAvx2x8}) {
    std::vector<Sha256Digest> got(msgs.size());
    sha256_many(msgs.data(), msgs.size(), got.data(), b);
    for (size_t i = 0; i < msgs.size(); ++i) {
      ASSERT_EQ(hex(got[i]), hex(Sha256Job::hash(msgs[i], Sha256Backend::kWolfCrypt)))
          << to_string(b) << " length " << i;
    }
  }
  // Sixteen long equal messages: every lane busy for many blocks.
  std::vector<std::string> big(16);
  std::vector<std::string_view> bv;
  for (size_t i = 0; i < 16; ++i) {
    big[i].assign(100000 + i, static_cast<char>('a' + i));
    bv.push_back(big[i]);
  }
  for (auto b : {Sha256Backend::kAvx512x16, Sha256Backend::kAvx2x8}) {
    std::vector<Sha256Digest> bg(16);
    sha256_many(bv.data(), 16, bg.data(), b);
    for (size_t i = 0; i < 16; ++i) {
      EXPECT_EQ(hex(bg[i]), hex(Sha256Job::hash(bv[i], Sha256Backend::kWolfCrypt))) << to_string(b);
    }
  }
}

TEST(Sha256, PortableCompression) {
  std::string block(128, 'q');
  uint32_t a[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  uint32_t b[8];
  std::memcpy(b, a, sizeof a);
  sha256_blocks_portable(a, reinterpret_cast<const uint8_t*>(block.data()), 2);
  if (!cpu_features().sha_ni) GTEST_SKIP() << "no SHA-NI to compare with";
  sha256_blocks_shani(b, reinterpret_cast<const uint8_t*>(block.data()), 2);
  EXPECT_EQ(0, std::memcmp(a, b, sizeof a));
}

// Deferred jobs pumped together the way a shard does at the end of each
// loop turn: 40 jobs of every kind of length, each given a random piece per
// turn (some none), pumped by pump_many() with each lane kernel and lane
// threshold; every digest equals wolfCrypt's over the whole input.
TEST(Sha256, DeferredJobsPumpedTogether) {
  std::mt19937_64 rng(5);
  std::vector<std::string> in(40);
  for (size_t i = 0; i < in.size(); ++i) {
    in[i].resize(i * 977 % 70000 + (i % 3) * 64);
    for (auto& c : in[i]) c = static_cast<char>(rng());
  }
  for (auto b : {Sha256Backend::kAvx512x16, Sha256Backend::kAvx2x8, Sha256Backend::kShaNi,
                 Sha256Backend::kWolfCrypt}) {
    for (size_t min_lanes : {size_t{2}, size_t{7}, size_t{17}}) {
      std::vector<std::unique_ptr<Sha256Deferred>> jobs;
      for (size_t i = 0; i < in.size(); ++i) jobs.push_back(std::make_unique<Sha256Deferred>(i % 5 != 4, b));
      std::vector<size_t> at(in.size(), 0);
      for (bool more = true; more;) {
        more = false;
        std::vector<Sha256Deferred*> turn;
        for (size_t i = 0; i < in.size(); ++i) {
          if (at[i] == in[i].size()) continue;
          more = true;
          if (rng() % 4 == 0) continue;  // nothing arrived for this one
          const size_t n = std::min<size_t>(in[i].size() - at[i], rng() % 9000);
          jobs[i]->add(std::string_view(in[i]).substr(at[i], n));
          at[i] += n;
          EXPECT_LT(jobs[i]->waiting_blocks() * 64, Sha256Deferred::kMaxPending);
          turn.push_back(jobs[i].get());
        }
        pump_many(turn.data(), turn.size(), min_lanes, b);
        for (auto* j : turn) EXPECT_EQ(j->waiting_blocks(), 0u);
      }
      for (size_t i = 0; i < in.size(); ++i) {
        EXPECT_EQ(jobs[i]->length(), in[i].size());
        ASSERT_EQ(hex(jobs[i]->finish()), hex(Sha256Job::hash(in[i], Sha256Backend::kWolfCrypt)))
            << to_string(b) << " min_lanes " << min_lanes << " job " << i;
      }
    }
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
