#include "proto/smtp_command.h"

#include <gtest/gtest.h>

namespace ringmail::proto {
namespace {

TEST(ParseCommand, VerbsCaseInsensitive) {
  EXPECT_EQ(parse_command("ehlo x").verb, Verb::kEhlo);
  EXPECT_EQ(parse_command("MaIl FROM:<a@b>").verb, Verb::kMail);
  EXPECT_EQ(parse_command("MAIL FROM:<a@b>  ").args, "FROM:<a@b>");
  EXPECT_EQ(parse_command("DATA").verb, Verb::kData);
  EXPECT_EQ(parse_command("DATA").args, "");
  EXPECT_EQ(parse_command("STARTTLS").verb, Verb::kStarttls);
  EXPECT_EQ(parse_command("XYZZY").verb, Verb::kUnknown);
  EXPECT_EQ(parse_command("").verb, Verb::kUnknown);
  EXPECT_EQ(parse_command("MAILX FROM:<>").verb, Verb::kUnknown);
}

TEST(ParseCommand, Http) {
  EXPECT_EQ(parse_command("GET / HTTP/1.1").verb, Verb::kHttp);
  EXPECT_EQ(parse_command("POST /submit HTTP/1.0").verb, Verb::kHttp);
}

TEST(PathArgs, MailWithParams) {
  PathArgs p;
  ASSERT_EQ(parse_path_args("FROM:<a@b.example> SIZE=100 BODY=8BITMIME SMTPUTF8", "FROM:", true, p),
            PathError::kNone);
  EXPECT_EQ(p.address.to_string(), "a@b.example");
  ASSERT_EQ(p.params.size(), 3u);
  EXPECT_EQ(p.params[0].first, "SIZE");
  EXPECT_EQ(p.params[0].second, "100");
  EXPECT_EQ(p.params[2].first, "SMTPUTF8");
  EXPECT_EQ(p.params[2].second, "");
}

TEST(PathArgs, SpaceAfterColonAndNull) {
  PathArgs p;
  EXPECT_EQ(parse_path_args("from: <>", "FROM:", true, p), PathError::kNone);
  EXPECT_TRUE(p.address.is_null());
  EXPECT_EQ(parse_path_args("TO:<>", "TO:", false, p), PathError::kBadAddress);
}

TEST(PathArgs, Errors) {
  PathArgs p;
  EXPECT_EQ(parse_path_args("<a@b>", "FROM:", true, p), PathError::kNoPrefix);
  EXPECT_EQ(parse_path_args("FROM:a@b", "FROM:", true, p), PathError::kNoPrefix);
  EXPECT_EQ(parse_path_args("FROM:<a@b", "FROM:", true, p), PathError::kBadAddress);
  EXPECT_EQ(parse_path_args("FROM:<a@b>SIZE=1", "FROM:", true, p), PathError::kBadParams);
  EXPECT_EQ(parse_path_args("FROM:<a@b> =1", "FROM:", true, p), PathError::kBadParams);
  EXPECT_EQ(parse_path_args("FROM:<a@b> S=1=2", "FROM:", true, p), PathError::kBadParams);
}

TEST(Bdat, Args) {
  BdatArgs b;
  ASSERT_TRUE(parse_bdat_args("1000", b));
  EXPECT_EQ(b.size, 1000u);
  EXPECT_FALSE(b.last);
  ASSERT_TRUE(parse_bdat_args("0 last", b));
  EXPECT_EQ(b.size, 0u);
  EXPECT_TRUE(b.last);
  EXPECT_FALSE(parse_bdat_args("", b));
  EXPECT_FALSE(parse_bdat_args("x", b));
  EXPECT_FALSE(parse_bdat_args("10 FIRST", b));
  EXPECT_FALSE(parse_bdat_args("99999999999999999999999", b));
}

TEST(Helo, Validity) {
  EXPECT_TRUE(is_valid_helo("mail.example.com"));
  EXPECT_TRUE(is_valid_helo("[192.0.2.1]"));
  EXPECT_FALSE(is_valid_helo(""));
  EXPECT_FALSE(is_valid_helo("a b"));
  EXPECT_FALSE(is_valid_helo("a\x01"));
}

}  // namespace
}  // namespace ringmail::proto
