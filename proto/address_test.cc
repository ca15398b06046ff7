#include "proto/address.h"

#include <gtest/gtest.h>

namespace ringmail::proto {
namespace {

Address parse_ok(std::string_view in, bool allow_null = false, bool postmaster = false) {
  Address a;
  size_t consumed = 0;
  EXPECT_EQ(parse_path(in, allow_null, postmaster, a, consumed), AddressError::kNone) << in;
  EXPECT_EQ(consumed, in.size()) << in;
  return a;
}

AddressError parse_err(std::string_view in, bool allow_null = false) {
  Address a;
  size_t consumed = 0;
  return parse_path(in, allow_null, false, a, consumed);
}

TEST(Address, Simple) {
  Address a = parse_ok("<user@example.com>");
  EXPECT_EQ(a.local, "user");
  EXPECT_EQ(a.domain, "example.com");
  EXPECT_FALSE(a.utf8);
  EXPECT_EQ(a.to_string(), "user@example.com");
}

TEST(Address, NullPathOnlyWhenAllowed) {
  EXPECT_TRUE(parse_ok("<>", true).is_null());
  EXPECT_EQ(parse_err("<>", false), AddressError::kSyntax);
}

TEST(Address, PostmasterWithoutDomain) {
  Address a = parse_ok("<Postmaster>", false, true);
  EXPECT_EQ(a.local, "Postmaster");
  EXPECT_TRUE(a.domain.empty());
  EXPECT_EQ(parse_err("<someone>"), AddressError::kSyntax);
}

TEST(Address, SourceRouteIgnored) {
  Address a = parse_ok("<@relay.example,@b.example:user@example.com>");
  EXPECT_EQ(a.to_string(), "user@example.com");
}

TEST(Address, QuotedLocalPart) {
  Address a = parse_ok(R"(<"john doe\"x"@example.com>)");
  EXPECT_EQ(a.local, "john doe\"x");
  EXPECT_EQ(a.to_string(), R"("john doe\"x"@example.com)");
}

TEST(Address, AddressLiterals) {
  EXPECT_EQ(parse_ok("<a@[192.0.2.1]>").domain, "[192.0.2.1]");
  EXPECT_EQ(parse_ok("<a@[IPv6:2001:db8::1]>").domain, "[IPv6:2001:db8::1]");
  EXPECT_EQ(parse_err("<a@[300.0.0.1]>"), AddressError::kSyntax);
  EXPECT_EQ(parse_err("<a@[IPv6:zz::1]>"), AddressError::kSyntax);
}

TEST(Address, Utf8) {
  Address a = parse_ok(
      "<j\xC3\xB6rg@b\xC3\xBC"
      "cher.example>");
  EXPECT_TRUE(a.utf8);
  EXPECT_EQ(parse_err("<j\xC3rg@example.com>"), AddressError::kSyntax);   // truncated sequence
  EXPECT_EQ(parse_err("<\xC0\xAF@example.com>"), AddressError::kSyntax);  // overlong
}

TEST(Address, Rejects) {
  for (std::string_view bad :
       {"user@example.com", "<user@example.com", "<user@>", "<@example.com>", "<a..b@example.com>",
        "<.a@example.com>", "<a.@example.com>", "<a b@example.com>", "<a@-example.com>",
        "<a@example-.com>", "<a@exa mple.com>", "<a@example..com>", "<a@>",
        "<a\x01"
        "@x.com>"}) {
    EXPECT_NE(parse_err(bad), AddressError::kNone) << bad;
  }
}

TEST(Address, Limits) {
  std::string local(64, 'a');
  parse_ok("<" + local + "@example.com>");
  EXPECT_EQ(parse_err("<" + local + "a@example.com>"), AddressError::kTooLong);
  std::string label(63, 'b');
  std::string domain = label + "." + label + "." + label + "." + label;  // 255
  EXPECT_EQ(parse_err("<a@" + domain + "x>"), AddressError::kTooLong);
  EXPECT_EQ(parse_err("<a@" + std::string(64, 'c') + ".com>"), AddressError::kSyntax);
}

TEST(Address, Helpers) {
  EXPECT_EQ(ascii_lower("MiXeD.Example"), "mixed.example");
  EXPECT_TRUE(iequals("EXAMPLE.test", "example.TEST"));
  EXPECT_FALSE(iequals("example.test", "example.tes"));
  EXPECT_TRUE(is_valid_domain("xn--bcher-kva.example"));
  EXPECT_FALSE(is_valid_domain(""));
}

}  // namespace
}  // namespace ringmail::proto
