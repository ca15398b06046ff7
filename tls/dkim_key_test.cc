// DKIM keys: generated, read back (PKCS#8 and PKCS#1), sign and verify, the
// public key for DNS; keys made by openssl read the same way.
#include "tls/dkim_key.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace ringmail::tls {
namespace {

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

TEST(DkimKey, GeneratedKeysSignAndVerify) {
  for (auto [type, bits] :
       {std::pair{DkimKey::Type::kRsa, 2048}, std::pair{DkimKey::Type::kEd25519, 0}}) {
    const auto pem = DkimKey::generate_pem(type, bits);
    ASSERT_TRUE(pem) << pem.error();
    EXPECT_NE(pem->find("-----BEGIN PRIVATE KEY-----"), std::string::npos);  // PKCS#8
    auto key = DkimKey::from_pem(*pem);
    ASSERT_TRUE(key) << key.error();
    const auto& k = *key;
    EXPECT_EQ(k->type(), type);
    const auto signed_data = k->sign("header data");
    ASSERT_TRUE(signed_data) << signed_data.error();
    const std::string& sig = *signed_data;
    EXPECT_EQ(sig.size(), type == DkimKey::Type::kRsa ? 256u : 64u);
    EXPECT_TRUE(k->verify("header data", sig));
    EXPECT_FALSE(k->verify("header datA", sig));
    EXPECT_EQ(k->public_key().size(), type == DkimKey::Type::kRsa ? 294u : 32u);
  }
}

TEST(DkimKey, OpensslKeysInBothRsaFormsAndEd25519) {
  if (run("command -v openssl").empty()) GTEST_SKIP() << "no openssl";
  auto pkcs1 = DkimKey::from_pem(run("openssl genrsa -traditional 2048 2>/dev/null"));
  ASSERT_TRUE(pkcs1) << pkcs1.error();
  EXPECT_EQ((*pkcs1)->bits(), 2048);
  const std::string ed_pem = run("openssl genpkey -algorithm ed25519 2>/dev/null");
  auto ed = DkimKey::from_pem(ed_pem);
  ASSERT_TRUE(ed) << ed.error();
  // The public key matches openssl's (the last 32 bytes of its SPKI DER).
  char tmpl[] = "/tmp/ringmail-dkim-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  FILE* f = ::fdopen(fd, "w");
  std::fwrite(ed_pem.data(), 1, ed_pem.size(), f);
  std::fclose(f);
  const std::string spki =
      run(std::string("openssl pkey -in ") + tmpl + " -pubout -outform DER 2>/dev/null");
  std::remove(tmpl);
  ASSERT_EQ(spki.size(), 44u);
  EXPECT_EQ((*ed)->public_key(), spki.substr(12));
}

// One key, many threads signing at once (the daemon's worker pool does):
// every signature is right.
TEST(DkimKey, ConcurrentSigningWithOneKey) {
  for (auto [type, bits] :
       {std::pair{DkimKey::Type::kRsa, 2048}, std::pair{DkimKey::Type::kEd25519, 0}}) {
    const auto pem = DkimKey::generate_pem(type, bits);
    ASSERT_TRUE(pem) << pem.error();
    auto key = DkimKey::from_pem(*pem);
    ASSERT_TRUE(key) << key.error();
    const auto& k = *key;
    std::atomic<int> bad{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t) {
      ts.emplace_back([&, t] {
        for (int i = 0; i < 20; ++i) {
          const std::string data = "data " + std::to_string(t) + "/" + std::to_string(i);
          const auto sig = k->sign(data);
          if (!sig || !k->verify(data, *sig)) ++bad;
        }
      });
    }
    for (auto& th : ts) th.join();
    EXPECT_EQ(bad.load(), 0);
  }
}

TEST(DkimKey, RefusesWhatIsNotAKey) {
  EXPECT_EQ(DkimKey::from_pem("hello").error(), "not a PEM private key");
  EXPECT_EQ(DkimKey::load("/nonexistent/key.pem").error(), "/nonexistent/key.pem: cannot read");
  if (run("command -v openssl").empty()) return;
  const auto small = DkimKey::from_pem(run("openssl genrsa -traditional 512 2>/dev/null"));
  ASSERT_FALSE(small);
  EXPECT_NE(small.error().find("at least 1024"), std::string::npos) << small.error();
}

}  // namespace
}  // namespace ringmail::tls
