#include "tls/client_hello.h"

#include <gtest/gtest.h>

#include "tls/test_peer.h"

namespace ringmail::tls {
namespace {

// The first flight of a real wolfSSL client.
std::string hello_from(int version, const std::string& sni, const std::string& ciphers = "") {
  TestClient c(version, sni, ciphers);
  c.step();
  return c.out;
}

TEST(ClientHello, Tls13WithSni) {
  const std::string h = hello_from(WOLFSSL_TLSV1_3, "Mail.Example.TEST");
  ClientHelloInfo info;
  ASSERT_EQ(parse_client_hello(h, &info), HelloStatus::kOk);
  EXPECT_EQ(info.server_name, "mail.example.test");
  EXPECT_TRUE(info.tls13);
  EXPECT_TRUE(info.ecdsa);
}

TEST(ClientHello, Tls12RsaOnlyClientIsNotEcdsa) {
  const std::string h = hello_from(WOLFSSL_TLSV1_2, "a.test",
                                   "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305");
  ClientHelloInfo info;
  ASSERT_EQ(parse_client_hello(h, &info), HelloStatus::kOk);
  EXPECT_EQ(info.server_name, "a.test");
  EXPECT_FALSE(info.tls13);
  EXPECT_FALSE(info.ecdsa);
  const std::string e = hello_from(WOLFSSL_TLSV1_2, "", "ECDHE-ECDSA-AES128-GCM-SHA256");
  ASSERT_EQ(parse_client_hello(e, &info), HelloStatus::kOk);
  EXPECT_EQ(info.server_name, "");
  EXPECT_TRUE(info.ecdsa);
}

// The first AES-GCM or ChaCha20 suite the client lists says what it would
// rather have.
TEST(ClientHello, ChachaFirstClient) {
  ClientHelloInfo info;
  ASSERT_EQ(parse_client_hello(hello_from(WOLFSSL_TLSV1_3, "a.test",
                                          "TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES128-GCM-SHA256"),
                               &info),
            HelloStatus::kOk);
  EXPECT_TRUE(info.prefers_chacha);
  ASSERT_EQ(parse_client_hello(hello_from(WOLFSSL_TLSV1_3, "a.test",
                                          "TLS13-AES128-GCM-SHA256:TLS13-CHACHA20-POLY1305-SHA256"),
                               &info),
            HelloStatus::kOk);
  EXPECT_FALSE(info.prefers_chacha);
  ASSERT_EQ(
      parse_client_hello(hello_from(WOLFSSL_TLSV1_2, "a.test",
                                    "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256"),
                         &info),
      HelloStatus::kOk);
  EXPECT_TRUE(info.prefers_chacha);
}

TEST(ClientHello, EveryPrefixNeedsMore) {
  const std::string h = hello_from(WOLFSSL_TLSV1_3, "mx.example.test");
  ClientHelloInfo info;
  for (size_t n = 0; n < h.size(); ++n) {
    ASSERT_EQ(parse_client_hello(h.substr(0, n), &info), HelloStatus::kNeedMore) << n;
  }
}

TEST(ClientHello, SplitAcrossRecords) {
  const std::string h = hello_from(WOLFSSL_TLSV1_3, "split.example.test");
  // Re-frame the handshake message as two records.
  const std::string body = h.substr(5);
  const size_t half = body.size() / 2;
  auto record = [&](const std::string& frag) {
    std::string r = h.substr(0, 3);
    r += static_cast<char>(frag.size() >> 8);
    r += static_cast<char>(frag.size() & 0xff);
    return r + frag;
  };
  const std::string two = record(body.substr(0, half)) + record(body.substr(half));
  ClientHelloInfo info;
  EXPECT_EQ(parse_client_hello(two.substr(0, 5 + half + 3), &info), HelloStatus::kNeedMore);
  ASSERT_EQ(parse_client_hello(two, &info), HelloStatus::kOk);
  EXPECT_EQ(info.server_name, "split.example.test");
}

TEST(ClientHello, NotTls) {
  ClientHelloInfo info;
  EXPECT_EQ(parse_client_hello("EHLO x\r\n", &info), HelloStatus::kNotTls);
  EXPECT_EQ(parse_client_hello("E", &info), HelloStatus::kNotTls);
  EXPECT_EQ(parse_client_hello(std::string("\x16\x03\x01\x00\x00", 5), &info),
            HelloStatus::kNotTls);
  EXPECT_EQ(parse_client_hello(std::string("\x16\x02\x01\x00\x05", 5), &info),
            HelloStatus::kNotTls);
  // A ServerHello (type 2) is not a ClientHello.
  EXPECT_EQ(parse_client_hello(std::string("\x16\x03\x01\x00\x04\x02\x00\x00\x00", 9), &info),
            HelloStatus::kNotTls);
  // A ClientHello whose lengths do not add up.
  std::string h = hello_from(WOLFSSL_TLSV1_3, "x.test");
  h[5 + 4 + 2 + 32] = static_cast<char>(200);  // session id length beyond the body
  EXPECT_EQ(parse_client_hello(h, &info), HelloStatus::kNotTls);
}

TEST(ClientHello, InvalidServerNameIsIgnored) {
  for (const char* bad : {"-a.test", "a..test", "a_b.test", "a.test-", "\xc3\xa9.test"}) {
    const std::string h = hello_from(WOLFSSL_TLSV1_3, bad);
    ClientHelloInfo info;
    ASSERT_EQ(parse_client_hello(h, &info), HelloStatus::kOk) << bad;
    EXPECT_EQ(info.server_name, "") << bad;
  }
  const std::string h = hello_from(WOLFSSL_TLSV1_3, "trailing.dot.test.");
  ClientHelloInfo info;
  ASSERT_EQ(parse_client_hello(h, &info), HelloStatus::kOk);
  EXPECT_EQ(info.server_name, "trailing.dot.test");
}

}  // namespace
}  // namespace ringmail::tls
