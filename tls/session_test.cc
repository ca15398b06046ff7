#include "tls/session.h"

#include <gtest/gtest.h>
#include <wolfssl/options.h>  // the first of wolfSSL's: the build's feature macros
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "tls/cert_store.h"
#include "tls/test_peer.h"
#include "tls/ticket_keys.h"

namespace ringmail::tls {
namespace {

namespace fs = std::filesystem;

int64_t now() { return static_cast<int64_t>(std::time(nullptr)); }

struct TempDir {
  TempDir() {
    std::string t = (fs::temp_directory_path() / "ringmail-tls-XXXXXX").string();
    path = ::mkdtemp(t.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
};

// Writes a self-signed pair for `host` as <dir>/<sub>/<chain>, <key>.
CertFiles write_pair(const std::string& dir, const std::string& sub, const std::string& host,
                     const std::string& chain = "fullchain.pem",
                     const std::string& key = "privkey.pem") {
  const auto pair = make_self_signed(host, now(), 30);
  EXPECT_TRUE(pair) << pair.error();
  fs::create_directories(fs::path(dir) / sub);
  CertFiles f{(fs::path(dir) / sub / chain).string(), (fs::path(dir) / sub / key).string()};
  if (pair) {
    std::ofstream(f.cert) << pair->cert_pem;
    std::ofstream(f.key) << pair->key_pem;
  }
  return f;
}

// The context of `r`, or null and a test failure with the reason.
std::shared_ptr<const TlsContext> must(Result<std::shared_ptr<const TlsContext>> r) {
  if (!r) {
    ADD_FAILURE() << r.error();
    return nullptr;
  }
  return *std::move(r);
}

// Moves bytes between the two sides until neither makes progress.
bool handshake(TestClient& c, TlsSession& s, std::string* plain) {
  for (int i = 0; i < 20; ++i) {
    c.step();
    s.feed(c.out);
    c.out.clear();
    if (s.pump(plain) == TlsSession::Status::kError) return false;
    c.in += s.output();
    s.output().clear();
    if (c.step() && s.handshake_done() && c.out.empty()) return true;
  }
  return false;
}

class TlsSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    files = write_pair(dir.path, "mx.example.test", "mx.example.test");
    ctx = must(TlsContext::load(files.cert, files.key, now(), keys));
    ASSERT_TRUE(ctx);
  }
  TempDir dir;
  CertFiles files;
  std::shared_ptr<TicketKeys> keys = TicketKeys::create();
  std::shared_ptr<const TlsContext> ctx;
};

TEST_F(TlsSessionTest, ContextDescribesTheCertificate) {
  EXPECT_TRUE(ctx->ecdsa());
  EXPECT_EQ(ctx->names(), std::vector<std::string>{"mx.example.test"});
  EXPECT_TRUE(ctx->covers("mx.example.test"));
  EXPECT_FALSE(ctx->covers("other.example.test"));
  EXPECT_GT(ctx->not_after(), now() + 29 * 86400);
  EXPECT_FALSE(ctx->serial_hex().empty());
}

TEST_F(TlsSessionTest, Tls13HandshakeAndDataBothWays) {
  TestClient c(WOLFSSL_TLSV1_3, "mx.example.test");
  TlsSession s(ctx);
  std::string plain;
  ASSERT_TRUE(handshake(c, s, &plain)) << s.error();
  EXPECT_EQ(s.version(), "TLSv1.3");
  // The server's order: AES-GCM first where it runs in hardware.
  EXPECT_EQ(s.cipher(),
            aes_is_fast() ? "TLS13-AES128-GCM-SHA256" : "TLS13-CHACHA20-POLY1305-SHA256");
  c.write("EHLO client.test\r\n");
  s.feed(c.out);
  c.out.clear();
  ASSERT_EQ(s.pump(&plain), TlsSession::Status::kOk);
  EXPECT_EQ(plain, "EHLO client.test\r\n");
  ASSERT_TRUE(s.write("250 ok\r\n"));
  c.in += s.output();
  s.output().clear();
  EXPECT_EQ(c.read(), "250 ok\r\n");
}

TEST_F(TlsSessionTest, Tls12ServerOrder) {
  TestClient c(WOLFSSL_TLSV1_2);
  TlsSession s(ctx);
  std::string plain;
  ASSERT_TRUE(handshake(c, s, &plain)) << s.error();
  EXPECT_EQ(s.version(), "TLSv1.2");
  EXPECT_EQ(s.cipher(),
            aes_is_fast() ? "ECDHE-ECDSA-AES128-GCM-SHA256" : "ECDHE-ECDSA-CHACHA20-POLY1305");
}

// A client without AES hardware asks for ChaCha20 first; the connection
// (engine/connection.cc) then has its session put it first.
TEST_F(TlsSessionTest, PreferChachaForAClientThatAsks) {
  TestClient c(WOLFSSL_TLSV1_3, "", "TLS13-AES128-GCM-SHA256:TLS13-CHACHA20-POLY1305-SHA256");
  TlsSession s(ctx);
  s.prefer_chacha();
  std::string plain;
  ASSERT_TRUE(handshake(c, s, &plain)) << s.error();
  EXPECT_EQ(s.cipher(), "TLS13-CHACHA20-POLY1305-SHA256");
}

TEST_F(TlsSessionTest, GarbageIsAnError) {
  TlsSession s(ctx);
  s.feed(std::string("\x16\x03\x01\x00\x10garbage-garbage!", 21));
  std::string plain;
  EXPECT_EQ(s.pump(&plain), TlsSession::Status::kError);
  EXPECT_FALSE(s.error().empty());
}

TEST_F(TlsSessionTest, CloseNotifyIsClosed) {
  TestClient c(WOLFSSL_TLSV1_3);
  TlsSession s(ctx);
  std::string plain;
  ASSERT_TRUE(handshake(c, s, &plain));
  wolfSSL_shutdown(c.ssl());
  s.feed(c.out);
  c.out.clear();
  EXPECT_EQ(s.pump(&plain), TlsSession::Status::kClosed);
}

// A ticket issued under one context resumes under a new context with the
// same keys (a certificate reload); under other keys (another process) the
// client gets a full handshake instead.
void check_tickets(int version, const std::shared_ptr<const TlsContext>& first,
                   const std::shared_ptr<const TlsContext>& reloaded,
                   const std::shared_ptr<const TlsContext>& other) {
  WOLFSSL_SESSION* saved = nullptr;
  {
    TestClient c(version);
    TlsSession s(first);
    std::string plain;
    ASSERT_TRUE(handshake(c, s, &plain));
    EXPECT_FALSE(s.resumed());
    c.read();  // TLS 1.3 sends the ticket after the handshake
    saved = wolfSSL_get1_session(c.ssl());
    ASSERT_NE(saved, nullptr);
  }
  for (const auto& [ctx, resumes] : {std::pair{reloaded, true}, std::pair{other, false}}) {
    if (!ctx) continue;
    TestClient c(version);
    ASSERT_EQ(wolfSSL_set_session(c.ssl(), saved), WOLFSSL_SUCCESS);
    TlsSession s(ctx);
    std::string plain;
    ASSERT_TRUE(handshake(c, s, &plain))
        << s.error() << " (client error " << wolfSSL_get_error(c.ssl(), 0) << ")";
    EXPECT_EQ(s.resumed(), resumes);
  }
  wolfSSL_SESSION_free(saved);
}

TEST_F(TlsSessionTest, TicketsSurviveAReload) {
  auto reloaded = must(TlsContext::load(files.cert, files.key, now(), keys));
  auto other = must(TlsContext::load(files.cert, files.key, now(), TicketKeys::create()));
  ASSERT_TRUE(reloaded && other);
  check_tickets(WOLFSSL_TLSV1_3, ctx, reloaded, other);
}

TEST_F(TlsSessionTest, Tls12TicketsSurviveAReload) {
  auto reloaded = must(TlsContext::load(files.cert, files.key, now(), keys));
  ASSERT_TRUE(reloaded);
  // (A TLS 1.2 ticket under other keys is checked with OpenSSL's client in
  // the integration tests: wolfSSL's own client does not take the full
  // handshake that answers a rejected TLS 1.2 ticket.)
  check_tickets(WOLFSSL_TLSV1_2, ctx, reloaded, nullptr);
}

TEST_F(TlsSessionTest, BrokenPairsAreRefusedWithAReason) {
  auto other = write_pair(dir.path, "other", "other.example.test");
  // The reason it was refused, or "(loaded)".
  auto refused = [](const Result<std::shared_ptr<const TlsContext>>& r) {
    return r ? std::string("(loaded)") : r.error();
  };
  std::string err;
  err = refused(TlsContext::load(files.cert, other.key, now(), nullptr));
  EXPECT_NE(err.find("does not match"), std::string::npos) << err;
  err = refused(TlsContext::load(files.cert, files.key, now() + 40 * 86400, nullptr));
  EXPECT_NE(err.find("expired"), std::string::npos) << err;
  err = refused(TlsContext::load(files.cert, files.key, now() - 7 * 86400, nullptr));
  EXPECT_NE(err.find("not valid yet"), std::string::npos) << err;
  std::ofstream(dir.path + "/junk.pem") << "not a certificate\n";
  err = refused(TlsContext::load(dir.path + "/junk.pem", files.key, now(), nullptr));
  EXPECT_NE(err.find("junk.pem"), std::string::npos) << err;
}

TEST(CertStore, FindsEveryLayoutAndPicksBySni) {
  TempDir d;
  write_pair(d.path + "/letsencrypt", "live/a.example.test", "a.example.test");
  write_pair(d.path + "/acme", "b.example.test_ecc", "b.example.test", "fullchain.cer",
             "b.example.test.key");
  write_pair(d.path + "/certs", "wild", "*.c.example.test");
  fs::create_directories(d.path + "/certs/empty");  // no pair: ignored
  const std::vector<std::string> dirs{d.path + "/letsencrypt", d.path + "/acme", d.path + "/certs"};
  EXPECT_EQ(find_cert_files(dirs).size(), 3u);
  std::vector<std::string> problems;
  auto store = CertStore::load(dirs, now(), nullptr, &problems);
  EXPECT_TRUE(problems.empty());
  ASSERT_EQ(store->contexts().size(), 3u);
  ClientHelloInfo hello;
  hello.ecdsa = true;
  hello.server_name = "b.example.test";
  EXPECT_EQ(store->pick(hello, "")->names()[0], "b.example.test");
  hello.server_name = "x.c.example.test";
  EXPECT_EQ(store->pick(hello, "")->names()[0], "*.c.example.test");
  hello.server_name = "y.x.c.example.test";  // two labels below the wildcard
  EXPECT_EQ(store->pick(hello, "a.example.test")->names()[0], "a.example.test");
  hello.server_name = "";
  EXPECT_EQ(store->pick(hello, "b.example.test")->names()[0], "b.example.test");
}

TEST(CertStore, ABrokenPairIsSkippedWithAProblem) {
  TempDir d;
  write_pair(d.path, "good", "good.example.test");
  auto bad = write_pair(d.path, "bad", "bad.example.test");
  std::ofstream(bad.key) << "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  std::vector<std::string> problems;
  auto store = CertStore::load({d.path}, now(), nullptr, &problems);
  EXPECT_EQ(store->contexts().size(), 1u);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("bad"), std::string::npos) << problems[0];
}

}  // namespace
}  // namespace ringmail::tls

namespace ringmail::tls {
namespace {

// Our own client role against our own server role, in memory: the outbound
// side of delivery. An opportunistic context checks no certificate: a
// self-signed one completes the handshake, never peer_verified().
TEST(TlsClient, OpportunisticHandshakeChecksNothing) {
  TempDir dir;
  CertFiles f = write_pair(dir.path, "mx", "mx.peer.test");
  auto server_ctx = must(TlsContext::load(f.cert, f.key, now(), nullptr));
  ASSERT_TRUE(server_ctx);
  auto client_ctx = must(TlsContext::client(TlsContext::ClientMode::kOpportunistic));
  ASSERT_TRUE(client_ctx);
  TlsSession server(server_ctx);
  TlsSession client(client_ctx, TlsSession::Role::kClient, "mx.peer.test");
  std::string plain;
  for (int i = 0; i < 20 && !(server.handshake_done() && client.handshake_done()); ++i) {
    ASSERT_NE(client.pump(&plain), TlsSession::Status::kError) << client.error();
    server.feed(client.output());
    client.output().clear();
    ASSERT_NE(server.pump(&plain), TlsSession::Status::kError) << server.error();
    client.feed(server.output());
    server.output().clear();
  }
  ASSERT_TRUE(client.handshake_done() && server.handshake_done());
  EXPECT_EQ(client.version(), "TLSv1.3");
  EXPECT_FALSE(client.peer_verified());  // not checked
  EXPECT_FALSE(client.certificate_failed());
  ASSERT_TRUE(client.write("EHLO relay.test\r\n"));
  server.feed(client.output());
  client.output().clear();
  std::string got;
  ASSERT_EQ(server.pump(&got), TlsSession::Status::kOk);
  EXPECT_EQ(got, "EHLO relay.test\r\n");
}

// A certificate made with wolfCrypt, DER and PEM, with its key.
struct Issued {
  std::vector<byte> der, key_der;
  std::string pem, key_pem;
};

std::string to_pem(const std::vector<byte>& der, int type) {
  std::vector<byte> pem(der.size() * 2 + 256);
  const int n = wc_DerToPem(der.data(), static_cast<word32>(der.size()), pem.data(),
                            static_cast<word32>(pem.size()), type);
  return n > 0 ? std::string(reinterpret_cast<char*>(pem.data()), static_cast<size_t>(n)) : "";
}

// Without `issuer`: a self-signed CA certificate (basicConstraints CA)
// named `name`; with it: a server certificate for `name` signed by it.
Issued issue(const std::string& name, const Issued* issuer) {
  init_library();
  Issued out;
  WC_RNG rng;
  ecc_key key, signer_key;
  EXPECT_EQ(wc_InitRng(&rng), 0);
  EXPECT_EQ(wc_ecc_init(&key), 0);
  EXPECT_EQ(wc_ecc_init(&signer_key), 0);
  EXPECT_EQ(wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1), 0);
  Cert cert;
  EXPECT_EQ(wc_InitCert(&cert), 0);
  std::strncpy(cert.subject.commonName, name.c_str(), CTC_NAME_SIZE - 1);
  std::strncpy(cert.subject.org, "ringmail test", CTC_NAME_SIZE - 1);
  cert.daysValid = 30;
  cert.sigType = CTC_SHA256wECDSA;
  cert.isCA = issuer == nullptr ? 1 : 0;
  ecc_key* signer = &key;
  if (issuer != nullptr) {
    EXPECT_EQ(wc_SetIssuerBuffer(&cert, issuer->der.data(), static_cast<int>(issuer->der.size())),
              0);
    word32 idx = 0;
    EXPECT_EQ(wc_EccPrivateKeyDecode(issuer->key_der.data(), &idx, &signer_key,
                                     static_cast<word32>(issuer->key_der.size())),
              0);
    signer = &signer_key;
  }
  std::vector<byte> der(4096);
  int n = wc_MakeCert_ex(&cert, der.data(), static_cast<word32>(der.size()), ECC_TYPE, &key, &rng);
  EXPECT_GT(n, 0);
  n = wc_SignCert_ex(cert.bodySz, cert.sigType, der.data(), static_cast<word32>(der.size()),
                     ECC_TYPE, signer, &rng);
  EXPECT_GT(n, 0);
  out.der.assign(der.begin(), der.begin() + std::max(n, 0));
  n = wc_EccKeyToDer(&key, der.data(), static_cast<word32>(der.size()));
  EXPECT_GT(n, 0);
  out.key_der.assign(der.begin(), der.begin() + std::max(n, 0));
  out.pem = to_pem(out.der, CERT_TYPE);
  out.key_pem = to_pem(out.key_der, ECC_PRIVATEKEY_TYPE);
  wc_ecc_free(&signer_key);
  wc_ecc_free(&key);
  wc_FreeRng(&rng);
  return out;
}

// Runs a client session against a server session in memory until both are
// done (true) or either fails (false).
bool connect(TlsSession& client, TlsSession& server) {
  std::string plain;
  for (int i = 0; i < 20 && !(server.handshake_done() && client.handshake_done()); ++i) {
    if (client.pump(&plain) == TlsSession::Status::kError) return false;
    server.feed(client.output());
    client.output().clear();
    if (server.pump(&plain) == TlsSession::Status::kError) return false;
    client.feed(server.output());
    server.output().clear();
  }
  return client.handshake_done() && server.handshake_done();
}

// A server whose certificate for mx.peer.test is signed by its own CA
// ("Rogue CA", trusted by nobody), sending the chain leaf + CA.
class UntrustedChain : public ::testing::Test {
 protected:
  void SetUp() override {
    rogue = issue("Rogue CA", nullptr);
    const Issued leaf = issue("mx.peer.test", &rogue);
    const Issued other = issue("Other CA", nullptr);
    chain = dir.path + "/fullchain.pem";
    rogue_ca = dir.path + "/rogue-ca.pem";
    other_ca = dir.path + "/other-ca.pem";
    std::ofstream(chain) << leaf.pem << rogue.pem;
    std::ofstream(dir.path + "/privkey.pem") << leaf.key_pem;
    std::ofstream(rogue_ca) << rogue.pem;
    std::ofstream(other_ca) << other.pem;
    server_ctx = must(TlsContext::load(chain, dir.path + "/privkey.pem", now(), nullptr));
    ASSERT_TRUE(server_ctx);
  }
  TempDir dir;
  Issued rogue;
  std::string chain, rogue_ca, other_ca;
  std::shared_ptr<const TlsContext> server_ctx;
};

// The defect: the verify callback overrode every failure, so wolfSSL took
// the peer's failing chain CA as verified and added it to the context's
// trusted CAs (ProcessPeerCerts: AddCA() when the callback left no error);
// the second handshake on the same context then verified the untrusted
// chain. A verifying context fails both, and every one after.
TEST_F(UntrustedChain, VerifyingContextNeverLearnsPeerCa) {
  auto client_ctx = must(TlsContext::client(TlsContext::ClientMode::kVerify, other_ca));
  ASSERT_TRUE(client_ctx);
  ASSERT_TRUE(client_ctx->verifying());
  for (int attempt = 1; attempt <= 3; ++attempt) {
    SCOPED_TRACE("handshake " + std::to_string(attempt));
    TlsSession server(server_ctx);
    TlsSession client(client_ctx, TlsSession::Role::kClient, "mx.peer.test");
    EXPECT_FALSE(connect(client, server));
    EXPECT_FALSE(client.handshake_done());
    EXPECT_FALSE(client.peer_verified());
    EXPECT_TRUE(client.certificate_failed());
    EXPECT_EQ(client.certificate_problem(),
              "untrusted issuer: its chain does not lead to a trusted CA");
  }
}

// The same chain where its CA is trusted: it checks out (so the failures
// above are the CA's), and the host name is checked too.
TEST_F(UntrustedChain, VerifiesWithTheRightCaAndName) {
  auto client_ctx = must(TlsContext::client(TlsContext::ClientMode::kVerify, rogue_ca));
  ASSERT_TRUE(client_ctx);
  {
    TlsSession server(server_ctx);
    TlsSession client(client_ctx, TlsSession::Role::kClient, "mx.peer.test");
    ASSERT_TRUE(connect(client, server)) << client.error();
    EXPECT_TRUE(client.peer_verified());
    EXPECT_FALSE(client.certificate_failed());
  }
  TlsSession server(server_ctx);
  TlsSession client(client_ctx, TlsSession::Role::kClient, "other.peer.test");
  EXPECT_FALSE(connect(client, server));
  EXPECT_FALSE(client.peer_verified());
  EXPECT_TRUE(client.certificate_failed());
  EXPECT_EQ(client.certificate_problem(), "name mismatch: it is not for other.peer.test");
}

// An opportunistic context completes the handshake with the untrusted
// chain, verifies nothing, and learns nothing: a verifying context is
// another context.
TEST_F(UntrustedChain, OpportunisticContextTakesItUnverified) {
  EXPECT_FALSE(TlsContext::client(TlsContext::ClientMode::kOpportunistic, other_ca));
  auto client_ctx = must(TlsContext::client(TlsContext::ClientMode::kOpportunistic));
  ASSERT_TRUE(client_ctx);
  EXPECT_FALSE(client_ctx->verifying());
  for (int attempt = 1; attempt <= 2; ++attempt) {
    TlsSession server(server_ctx);
    TlsSession client(client_ctx, TlsSession::Role::kClient, "mx.peer.test");
    ASSERT_TRUE(connect(client, server)) << client.error();
    EXPECT_FALSE(client.peer_verified());
    EXPECT_FALSE(client.certificate_failed());
  }
}

}  // namespace
}  // namespace ringmail::tls
