// SHA-256 backends against FIPS 180-4's examples, NIST's SHAVS vectors
// (tests/data/shavs) and wolfCrypt on every length 0..2048 with random
// chunk splits.
#include "tls/sha256.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <utility>
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

std::string unhex(std::string_view h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) {
    out += static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16));
  }
  return out;
}

// `s` cut at random points, in chunks of 0..max-1 bytes.
std::vector<std::string_view> random_chunks(std::string_view s, std::mt19937_64& rng, size_t max) {
  std::vector<std::string_view> out;
  for (size_t pos = 0; pos < s.size();) {
    out.push_back(s.substr(pos, rng() % max));
    pos += out.back().size();
  }
  return out;
}

// The "Key = value" lines of a SHAVS .rsp file, in order (comments, "[L =
// 32]" and blank lines skipped; NIST's files have CRLF line ends).
std::vector<std::pair<std::string, std::string>> rsp_fields(const char* name) {
  std::ifstream f(std::filesystem::path(RINGMAIL_SOURCE_DIR) / "tests/data/shavs" / name,
                  std::ios::binary);
  std::vector<std::pair<std::string, std::string>> out;
  for (std::string line; std::getline(f, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t eq = line.find(" = ");
    if (line.empty() || line[0] == '#' || line[0] == '[' || eq == std::string::npos) continue;
    out.emplace_back(line.substr(0, eq), line.substr(eq + 3));
  }
  return out;
}

struct ShavsMsg {
  size_t bits = 0;
  std::string msg;
  std::string md;  // hex
};

// Len/Msg/MD triples (Len = 0 is written "Msg = 00": Msg keeps Len bits).
std::vector<ShavsMsg> rsp_msgs(const char* name) {
  std::vector<ShavsMsg> out;
  ShavsMsg v;
  for (const auto& [key, value] : rsp_fields(name)) {
    if (key == "Len") v.bits = std::stoul(value);
    if (key == "Msg") v.msg = unhex(value).substr(0, v.bits / 8);
    if (key == "MD") {
      v.md = value;
      out.push_back(v);
    }
  }
  return out;
}

// Every ShortMsg and LongMsg vector.
std::vector<ShavsMsg> shavs_msgs() {
  std::vector<ShavsMsg> v = rsp_msgs("SHA256ShortMsg.rsp");
  const std::vector<ShavsMsg> l = rsp_msgs("SHA256LongMsg.rsp");
  v.insert(v.end(), l.begin(), l.end());
  return v;
}

struct ShavsMonte {
  Sha256Digest seed{};
  std::vector<std::string> md;  // hex, checkpoint COUNT = j at md[j]
};

Sha256Digest digest_of(std::string_view hex_md) {
  Sha256Digest d{};
  const std::string b = unhex(hex_md);
  std::memcpy(d.data(), b.data(), std::min(b.size(), d.size()));
  return d;
}

ShavsMonte shavs_monte() {
  ShavsMonte m;
  for (const auto& [key, value] : rsp_fields("SHA256Monte.rsp")) {
    if (key == "Seed") m.seed = digest_of(value);
    if (key == "COUNT") {
      EXPECT_EQ(std::stoul(value), m.md.size());
    }
    if (key == "MD") m.md.push_back(value);
  }
  return m;
}

// SHAVS Monte Carlo chains, n at a time: chain c starts from MD0 = MD1 =
// MD2 = seeds[c], steps i = 3..1002 compute MDi = SHA256(MD(i-3) ||
// MD(i-2) || MD(i-1)), and MD1002 (returned) is the chain's checkpoint.
// hash_n(msgs, n, out) hashes the n chains' messages of one step.
template <typename HashN>
std::vector<Sha256Digest> monte_chains(const std::vector<Sha256Digest>& seeds, HashN hash_n) {
  const size_t n = seeds.size();
  std::vector<std::array<Sha256Digest, 3>> window(n);  // MD(i-3), MD(i-2), MD(i-1)
  for (size_t c = 0; c < n; ++c) window[c].fill(seeds[c]);
  std::vector<std::string> m(n);
  std::vector<std::string_view> mv(n);
  std::vector<Sha256Digest> md(n);
  for (int i = 3; i <= 1002; ++i) {
    for (size_t c = 0; c < n; ++c) {
      m[c].clear();
      for (const auto& d : window[c]) {
        m[c].append(reinterpret_cast<const char*>(d.data()), d.size());
      }
      mv[c] = m[c];
    }
    hash_n(mv.data(), n, md.data());
    for (size_t c = 0; c < n; ++c) window[c] = {window[c][1], window[c][2], md[c]};
  }
  return md;
}

// The vector files are whole: ShortMsg every byte length 0..64, LongMsg
// 1304 + 792k bits for k = 0..63, Monte a seed and 100 checkpoints.
TEST(Sha256Shavs, FilesComplete) {
  const std::vector<ShavsMsg> s = rsp_msgs("SHA256ShortMsg.rsp");
  const std::vector<ShavsMsg> l = rsp_msgs("SHA256LongMsg.rsp");
  ASSERT_EQ(s.size(), 65u);
  ASSERT_EQ(l.size(), 64u);
  for (size_t i = 0; i < s.size(); ++i) EXPECT_EQ(s[i].bits, 8 * i);
  for (size_t i = 0; i < l.size(); ++i) EXPECT_EQ(l[i].bits, 1304 + 792 * i);
  for (const auto* v : {&s, &l}) {
    for (const ShavsMsg& t : *v) {
      EXPECT_EQ(t.msg.size() * 8, t.bits);
      EXPECT_EQ(t.md.size(), 64u);
    }
  }
  const ShavsMonte m = shavs_monte();
  EXPECT_NE(m.seed, Sha256Digest{});
  EXPECT_EQ(m.md.size(), 100u);
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
  EXPECT_EQ(
      hex(Sha256Job::hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", GetParam())),
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
    for (std::string_view c : random_chunks(m, rng, 150)) h.update(c);
    ASSERT_EQ(hex(h.finish()), hex(want)) << "length " << len;
  }
}

// Every SHAVS ShortMsg and LongMsg vector, whole and in random chunks.
TEST_P(Sha256Test, ShavsShortAndLongMsg) {
  const std::vector<ShavsMsg> v = shavs_msgs();
  ASSERT_EQ(v.size(), 65u + 64u);
  std::mt19937_64 rng(7);
  for (const ShavsMsg& t : v) {
    EXPECT_EQ(hex(Sha256Job::hash(t.msg, GetParam())), t.md) << "Len " << t.bits;
    Sha256Job h(GetParam());
    for (std::string_view c : random_chunks(t.msg, rng, 200)) h.update(c);
    EXPECT_EQ(hex(h.finish()), t.md) << "Len " << t.bits << " in chunks";
  }
}

// The SHAVS Monte Carlo test: one chain from the seed through the 100
// checkpoints.
TEST_P(Sha256Test, ShavsMonte) {
  const ShavsMonte m = shavs_monte();
  ASSERT_EQ(m.md.size(), 100u);
  const auto one_by_one = [&](const std::string_view* msgs, size_t n, Sha256Digest* out) {
    for (size_t i = 0; i < n; ++i) out[i] = Sha256Job::hash(msgs[i], GetParam());
  };
  Sha256Digest seed = m.seed;
  for (size_t j = 0; j < m.md.size(); ++j) {
    seed = monte_chains({seed}, one_by_one)[0];
    ASSERT_EQ(hex(seed), m.md[j]) << "checkpoint " << j;
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

// sha256_many() with a multi-buffer backend, skipped where the CPU lacks it.
class Sha256ManyTest : public ::testing::TestWithParam<Sha256Backend> {
 protected:
  void SetUp() override {
    const Sha256Backend b = GetParam();
    if (b == Sha256Backend::kAvx512x16 && !cpu_features().avx512) GTEST_SKIP() << "no AVX-512";
    if (b == Sha256Backend::kAvx2x8 && !cpu_features().avx2) GTEST_SKIP() << "no AVX2";
  }
  size_t lanes() const { return GetParam() == Sha256Backend::kAvx512x16 ? 16 : 8; }
};

// Every SHAVS ShortMsg and LongMsg vector in one call: in file order
// (neighbouring lengths side by side in the lanes), then shuffled.
TEST_P(Sha256ManyTest, ShavsShortAndLongMsg) {
  std::vector<ShavsMsg> v = shavs_msgs();
  ASSERT_EQ(v.size(), 65u + 64u);
  std::mt19937_64 rng(11);
  for (const char* order : {"file order", "shuffled"}) {
    std::vector<std::string_view> msgs;
    for (const ShavsMsg& t : v) msgs.push_back(t.msg);
    std::vector<Sha256Digest> got(v.size());
    sha256_many(msgs.data(), msgs.size(), got.data(), GetParam());
    for (size_t i = 0; i < v.size(); ++i) {
      EXPECT_EQ(hex(got[i]), v[i].md) << "Len " << v[i].bits << ", " << order;
    }
    std::shuffle(v.begin(), v.end(), rng);
  }
}

// The SHAVS Monte Carlo test in the lanes, step by step: chain j starts
// from checkpoint j-1 (the seed for j = 0), as in the single chain, so
// every lane holds a different chain and all 100 checkpoints are checked.
TEST_P(Sha256ManyTest, ShavsMonte) {
  const ShavsMonte m = shavs_monte();
  ASSERT_EQ(m.md.size(), 100u);
  const auto many = [&](const std::string_view* msgs, size_t n, Sha256Digest* out) {
    sha256_many(msgs, n, out, GetParam());
  };
  for (size_t j0 = 0; j0 < m.md.size(); j0 += lanes()) {
    std::vector<Sha256Digest> seeds;
    for (size_t j = j0; j < std::min(j0 + lanes(), m.md.size()); ++j) {
      seeds.push_back(j == 0 ? m.seed : digest_of(m.md[j - 1]));
    }
    const std::vector<Sha256Digest> got = monte_chains(seeds, many);
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(hex(got[k]), m.md[j0 + k]) << "checkpoint " << j0 + k;
    }
  }
}

// Deferred jobs: every SHAVS ShortMsg and LongMsg vector at once, each fed
// in random chunks, one chunk per turn, the turn's waiting blocks pumped
// together in the lanes (pump_many(), as a shard does).
TEST_P(Sha256ManyTest, ShavsDeferredInRandomChunks) {
  const std::vector<ShavsMsg> v = shavs_msgs();
  ASSERT_EQ(v.size(), 65u + 64u);
  std::mt19937_64 rng(5);
  std::vector<std::unique_ptr<Sha256Deferred>> jobs;
  std::vector<std::vector<std::string_view>> chunks;
  for (const auto& t : v) {
    jobs.push_back(std::make_unique<Sha256Deferred>(true, GetParam()));
    chunks.push_back(random_chunks(t.msg, rng, 300));
  }
  for (size_t turn = 0;; ++turn) {
    std::vector<Sha256Deferred*> fed;
    for (size_t i = 0; i < v.size(); ++i) {
      if (turn >= chunks[i].size()) continue;
      jobs[i]->add(chunks[i][turn]);
      fed.push_back(jobs[i].get());
    }
    if (fed.empty()) break;
    pump_many(fed.data(), fed.size(), 7, GetParam());
  }
  for (size_t i = 0; i < v.size(); ++i)
    EXPECT_EQ(hex(jobs[i]->finish()), v[i].md) << "Len " << v[i].bits;
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
      for (size_t i = 0; i < in.size(); ++i)
        jobs.push_back(std::make_unique<Sha256Deferred>(i % 5 != 4, b));
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
                           return std::string(info.param == Sha256Backend::kShaNi ? "ShaNi"
                                                                                  : "WolfCrypt");
                         });
INSTANTIATE_TEST_SUITE_P(Backends, Sha256ManyTest,
                         ::testing::Values(Sha256Backend::kAvx512x16, Sha256Backend::kAvx2x8),
                         [](const auto& info) {
                           return std::string(info.param == Sha256Backend::kAvx512x16 ? "Avx512x16"
                                                                                      : "Avx2x8");
                         });

}  // namespace
}  // namespace ringmail::tls
