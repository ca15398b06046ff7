// DKIM in the daemon: what dkim_sign produces, dkim_verify accepts (both
// key types, both hash backends), and the Authentication-Results text.
#include "engine/dkim.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "proto/sasl.h"

namespace ringmail::engine {
namespace {

DkimSigner signer(tls::DkimKey::Type t, const std::string& selector) {
  DkimSigner s;
  s.domain = "example.test";
  s.selector = selector;
  const auto pem = tls::DkimKey::generate_pem(t, 2048);
  EXPECT_TRUE(pem) << pem.error();
  if (!pem) return s;
  auto key = tls::DkimKey::from_pem(*pem);
  EXPECT_TRUE(key) << key.error();
  if (key) s.key = std::move(*key);
  return s;
}

TxtAnswer record_of(const DkimSigner& s) {
  TxtAnswer a;
  a.status = DnsStatus::kOk;
  a.records.push_back(proto::dkim::dns_record(s.key->type() == tls::DkimKey::Type::kRsa
                                                  ? proto::dkim::Algorithm::kRsaSha256
                                                  : proto::dkim::Algorithm::kEd25519Sha256,
                                              proto::base64_encode(s.key->public_key())));
  return a;
}

TEST(Dkim, SignedMessagesVerify) {
  const std::vector<DkimSigner> keys = {signer(tls::DkimKey::Type::kRsa, "r"),
                                        signer(tls::DkimKey::Type::kEd25519, "e")};
  const std::string msg =
      "Received: from x\r\n\tby y\r\nFrom: A <a@example.test>\r\nTo: b@peer.test\r\n"
      "Subject:  spaced   out \r\n\r\nline one  \r\n\r\n.line two\r\n\r\n";
  for (auto backend : {tls::Sha256Backend::kWolfCrypt, tls::Sha256Backend::kShaNi}) {
    const auto fields = dkim_sign(msg, keys, 1795000000, backend);
    ASSERT_TRUE(fields) << fields.error();
    const std::string signed_msg = *fields + msg;
    auto checks = dkim_find(signed_msg);
    ASSERT_EQ(checks.size(), 2u);
    for (auto& c : checks) c.key = record_of(c.sig.selector == "r" ? keys[0] : keys[1]);
    dkim_verify(signed_msg, &checks, 1795000001, backend);
    for (const auto& c : checks) EXPECT_EQ(c.result, "pass") << c.sig.selector << ": " << c.reason;
    const std::string ar = authentication_results("mx.test", checks);
    EXPECT_NE(ar.find("dkim=pass header.d=example.test header.s=r header.a=rsa-sha256"),
              std::string::npos)
        << ar;
    // One changed byte in the body, or in a signed header.
    for (auto [from, to] : {std::pair{"line one", "line One"}, std::pair{"spaced", "Spaced"}}) {
      std::string bad = signed_msg;
      bad.replace(bad.find(from), std::string(from).size(), to);
      auto bc = dkim_find(bad);
      for (auto& c : bc) c.key = record_of(c.sig.selector == "r" ? keys[0] : keys[1]);
      dkim_verify(bad, &bc, 1795000001, backend);
      for (const auto& c : bc) EXPECT_EQ(c.result, "fail") << from;
    }
  }
}

// Feeds `msgs` to deferred hashers the way a shard does: each message
// grows by a random piece per loop turn, and at the end of each turn the
// waiting blocks of all of them are hashed together (in the lanes when
// `b` has them and enough hashers have blocks).
std::vector<std::unique_ptr<DkimBodyHasher>> hash_streamed(const std::vector<std::string>& msgs,
                                                           bool sign, bool verify,
                                                           tls::Sha256Backend b, uint32_t seed) {
  std::vector<std::unique_ptr<DkimBodyHasher>> h;
  std::vector<size_t> got(msgs.size(), 0);
  for (size_t i = 0; i < msgs.size(); ++i)
    h.push_back(std::make_unique<DkimBodyHasher>(sign, verify, true, b));
  uint32_t r = seed;
  for (bool more = true; more;) {
    more = false;
    std::vector<tls::Sha256Deferred*> jobs;
    for (size_t i = 0; i < msgs.size(); ++i) {
      if (got[i] == msgs[i].size()) continue;
      r = r * 1103515245 + 12345;
      got[i] = std::min(msgs[i].size(), got[i] + 1 + (r >> 8) % 9000);
      h[i]->update(std::string_view(msgs[i]).substr(0, got[i]));
      h[i]->jobs(&jobs);
      more = true;
    }
    tls::pump_many(jobs.data(), jobs.size(), kDkimBatchMin, b);
  }
  for (size_t i = 0; i < msgs.size(); ++i) h[i]->finish(msgs[i]);
  return h;
}

// Body hashes computed as messages arrive, batched across messages in the
// lanes or not, equal those of the whole message hashed at once by
// wolfCrypt: signatures dkim_sign() made verify with them.
TEST(Dkim, StreamedBodyHashesSignAlike) {
  const std::vector<DkimSigner> keys = {signer(tls::DkimKey::Type::kEd25519, "e")};
  std::vector<std::string> msgs;
  for (int i = 0; i < 21; ++i) {  // more than 16: two groups of lanes
    std::string body;
    for (int k = 0; k < i * 211; ++k)
      body += "line " + std::to_string(k) + (k % 3 ? "  \t\r\n" : "\r\n");
    msgs.push_back("From: a@example.test\r\nSubject: m" + std::to_string(i) + "\r\n\r\n" + body);
  }
  msgs.push_back("From: a@example.test\r\n");  // no body at all
  msgs.push_back("From: a@example.test\r\nSubject: x\r\n\r\n\r\n\r\n");
  for (auto b : {tls::Sha256Backend::kAvx512x16, tls::Sha256Backend::kAvx2x8,
                 tls::Sha256Backend::kShaNi, tls::Sha256Backend::kWolfCrypt}) {
    const auto h = hash_streamed(msgs, true, false, b, 7 + static_cast<uint32_t>(b));
    for (size_t i = 0; i < msgs.size(); ++i) {
      ASSERT_NE(h[i]->find(true, -1), nullptr);
      EXPECT_EQ(h[i]->find(false, -1), nullptr);  // only what was asked for
      const auto fields = dkim_sign(msgs[i], keys, 1795000000, tls::Sha256Backend::kWolfCrypt);
      ASSERT_TRUE(fields) << fields.error();
      const std::string m = *fields + msgs[i];
      auto c = dkim_find(m);
      c[0].key = record_of(keys[0]);
      dkim_verify(m, &c, 1795000001, tls::Sha256Backend::kAuto, h[i].get());
      EXPECT_EQ(c[0].result, "pass") << tls::to_string(b) << " " << i << ": " << c[0].reason;
    }
  }
}

// Golden files (tests/data/dkim): messages signed by dkimpy with the keys
// of golden.test.zone, some changed afterwards, each with the result every
// signature must get (canonicalization edge cases: folded and spaced
// headers, trailing blank lines and whitespace, an empty body, l=).
TEST(Dkim, GoldenFiles) {
  const std::filesystem::path dir = std::filesystem::path(RINGMAIL_SOURCE_DIR) / "tests/data/dkim";
  auto read = [](const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  std::map<std::string, std::string> zone;  // name -> TXT text
  std::istringstream z(read(dir / "golden.test.zone"));
  for (std::string line; std::getline(z, line);) {
    std::string name = line.substr(0, line.find(' '));
    if (!name.empty() && name.back() == '.') name.pop_back();
    std::string txt;
    for (size_t q = line.find('"'); q != std::string::npos; q = line.find('"', q + 1)) {
      const size_t e = line.find('"', q + 1);
      txt += line.substr(q + 1, e - q - 1);
      q = e;
    }
    zone[name] = txt;
  }
  ASSERT_EQ(zone.size(), 2u);
  int cases = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".eml") continue;
    ++cases;
    const std::string msg = read(e.path());
    std::string want = read(std::filesystem::path(e.path()).replace_extension(".expected"));
    while (!want.empty() && want.back() == '\n') want.pop_back();
    for (auto backend : {tls::Sha256Backend::kWolfCrypt, tls::Sha256Backend::kShaNi}) {
      auto checks = dkim_find(msg);
      ASSERT_EQ(checks.size(), 1u) << e.path();
      for (auto& c : checks) {
        c.key.status = DnsStatus::kOk;
        c.key.records = {zone[c.key_name()]};
      }
      dkim_verify(msg, &checks, 1795000000, backend);
      EXPECT_EQ(checks[0].result, want) << e.path().filename() << ": " << checks[0].reason;
    }
    // The same with the body hashes computed as the message arrives, in
    // pieces, deferred and batched with 15 other copies.
    for (auto backend : {tls::Sha256Backend::kAvx512x16, tls::Sha256Backend::kShaNi}) {
      const auto h = hash_streamed(std::vector<std::string>(16, msg), false, true, backend, 3);
      for (size_t i = 0; i < h.size(); ++i) {
        auto checks = dkim_find(msg);
        for (auto& c : checks) {
          c.key.status = DnsStatus::kOk;
          c.key.records = {zone[c.key_name()]};
          ASSERT_NE(h[i]->find(c.sig.body_relaxed, c.sig.length), nullptr) << e.path();
        }
        dkim_verify(msg, &checks, 1795000000, backend, h[i].get());
        EXPECT_EQ(checks[0].result, want)
            << e.path().filename() << " streamed: " << checks[0].reason;
      }
    }
  }
  EXPECT_EQ(cases, 9);
}

TEST(Dkim, KeyProblemsAndResults) {
  const std::vector<DkimSigner> keys = {signer(tls::DkimKey::Type::kEd25519, "e")};
  const std::string msg = "From: a@example.test\r\n\r\nx\r\n";
  const auto fields = dkim_sign(msg, keys, 1795000000, tls::Sha256Backend::kAuto);
  ASSERT_TRUE(fields) << fields.error();
  const std::string m = *fields + msg;
  auto run = [&](TxtAnswer a) {
    auto c = dkim_find(m);
    c[0].key = std::move(a);
    dkim_verify(m, &c, 1795000001, tls::Sha256Backend::kAuto);
    return c[0].result + " " + c[0].reason;
  };
  EXPECT_EQ(run(TxtAnswer{DnsStatus::kTempFail, {}}), "temperror key lookup failed for now");
  EXPECT_EQ(run(TxtAnswer{DnsStatus::kNxDomain, {}}),
            "permerror no key at e._domainkey.example.test");
  EXPECT_EQ(run(TxtAnswer{DnsStatus::kOk, {"v=DKIM1; k=ed25519; p="}}), "fail key revoked");
  EXPECT_EQ(run(TxtAnswer{DnsStatus::kOk, {"v=DKIM1; k=rsa; p=AAAA"}}),
            "permerror key does not match a=");
  EXPECT_EQ(authentication_results("mx.test", {}),
            "Authentication-Results: mx.test; dkim=none\r\n");
  std::string forged =
      "Received: x\r\nAuthentication-Results: MX.test; dkim=pass\r\n\tmore\r\n"
      "Authentication-Results: other.test; dkim=pass\r\nFrom: a\r\n\r\nbody\r\n";
  remove_forged_results(&forged, "mx.test");
  EXPECT_EQ(
      forged,
      "Received: x\r\nAuthentication-Results: other.test; dkim=pass\r\nFrom: a\r\n\r\nbody\r\n");
}

}  // namespace
}  // namespace ringmail::engine
