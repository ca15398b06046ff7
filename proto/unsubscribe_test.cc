#include "proto/unsubscribe.h"

#include <gtest/gtest.h>

#include "proto/test_hmac.h"

namespace ringmail::proto::unsubscribe {
namespace {

using test_support::fake_hmac_sha256;

const Subject kBob{"bob@example.net", "example.com", "news"};

TEST(Unsubscribe, TokenRoundTrips) {
  const std::string t = make_token(kBob, "secret", fake_hmac_sha256);
  ASSERT_FALSE(t.empty());
  EXPECT_EQ(t.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
            std::string::npos);
  auto s = read_token(t, {"secret"}, fake_hmac_sha256);
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->recipient, "bob@example.net");
  EXPECT_EQ(s->sender_domain, "example.com");
  EXPECT_EQ(s->stream, "news");
}

TEST(Unsubscribe, AnyChangedCharacterIsRefused) {
  const std::string t = make_token(kBob, "secret", fake_hmac_sha256);
  for (size_t i = 0; i < t.size(); ++i) {
    std::string bad = t;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(read_token(bad, {"secret"}, fake_hmac_sha256)) << "position " << i;
  }
  EXPECT_FALSE(read_token(t.substr(0, t.size() - 1), {"secret"}, fake_hmac_sha256));
  EXPECT_FALSE(read_token(t + "A", {"secret"}, fake_hmac_sha256));
}

TEST(Unsubscribe, AnotherSecretIsRefusedAndRotationVerifies) {
  const std::string t = make_token(kBob, "old", fake_hmac_sha256);
  auto wrong = read_token(t, {"new"}, fake_hmac_sha256);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error(), "the token was altered or is not ours");
  EXPECT_TRUE(read_token(t, {"new", "old"}, fake_hmac_sha256));
}

TEST(Unsubscribe, GarbageIsNotAToken) {
  for (const char* g : {"", "x", "!!!!", "AAAA", "a+b/c=", "unsubscribe"}) {
    auto r = read_token(g, {"secret"}, fake_hmac_sha256);
    ASSERT_FALSE(r) << g;
    EXPECT_EQ(r.error(), "not an unsubscribe token") << g;
  }
}

TEST(Unsubscribe, HeaderFieldsWithAShortTokenInTheLocalPart) {
  const std::string f = header_fields("abc", "https://mail.example.com/u/", "unsub@example.com");
  EXPECT_EQ(f,
            "List-Unsubscribe: <https://mail.example.com/u/abc>,\r\n"
            "\t<mailto:unsub+abc@example.com>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
}

TEST(Unsubscribe, HeaderFieldsWithALongTokenInTheSubject) {
  const std::string t = make_token(kBob, "secret", fake_hmac_sha256);
  ASSERT_GT(t.size() + 6, 64u);
  const std::string f = header_fields(t, "https://h/u/", "unsub@example.com");
  EXPECT_NE(f.find("<mailto:unsub@example.com?subject=" + t + ">"), std::string::npos);
  EXPECT_EQ(header_fields(t, "https://h/u/", ""),
            "List-Unsubscribe: <https://h/u/" + t +
                ">\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
}

TEST(Unsubscribe, TokenFromMail) {
  EXPECT_EQ(token_from_mail("unsub+abc-_9", "whatever"), "abc-_9");
  EXPECT_EQ(token_from_mail("unsub", "abcdef"), "abcdef");
  EXPECT_EQ(token_from_mail("unsub", "Re: unsubscribe abcdef \r\n"), "abcdef");
  EXPECT_EQ(token_from_mail("unsub", ""), "");
}

TEST(Unsubscribe, OneClickBodies) {
  EXPECT_TRUE(is_one_click_body("application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"));
  EXPECT_TRUE(is_one_click_body("application/x-www-form-urlencoded; charset=utf-8",
                                "a=b&List-Unsubscribe=One-Click\r\n"));
  EXPECT_FALSE(is_one_click_body("application/x-www-form-urlencoded", "List-Unsubscribe=No"));
  EXPECT_FALSE(is_one_click_body("application/x-www-form-urlencoded", ""));
  EXPECT_FALSE(is_one_click_body("application/x-www-form-urlencoded", "%zz"));
  const std::string multipart =
      "--XX\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
      "One-Click\r\n--XX--\r\n";
  EXPECT_TRUE(is_one_click_body("multipart/form-data; boundary=XX", multipart));
  EXPECT_FALSE(is_one_click_body("multipart/form-data; boundary=XX",
                                 "--XX\r\nContent-Disposition: form-data; "
                                 "name=\"List-Unsubscribe\"\r\n\r\nOne-Clicks\r\n--XX--\r\n"));
}

}  // namespace
}  // namespace ringmail::proto::unsubscribe
