// The organizational domain from the installed Public Suffix List.
#include "engine/psl.h"

#include <gtest/gtest.h>

namespace ringmail::engine {
namespace {

TEST(Psl, OrganizationalDomain) {
  EXPECT_EQ(organizational_domain("example.com"), "example.com");
  EXPECT_EQ(organizational_domain("a.b.example.com"), "example.com");
  EXPECT_EQ(organizational_domain("mail.example.co.uk"), "example.co.uk");
  EXPECT_EQ(organizational_domain("Mail.Example.CO.UK."), "example.co.uk");
  // A wildcard rule (*.ck) and its exception (!www.ck).
  EXPECT_EQ(organizational_domain("a.b.foo.ck"), "b.foo.ck");
  EXPECT_EQ(organizational_domain("www.ck"), "www.ck");
  // A private-section suffix: each user's name is its own organization.
  EXPECT_EQ(organizational_domain("x.alice.github.io"), "alice.github.io");
}

TEST(Psl, PublicSuffixIsItsOwnOrganizationalDomain) {
  EXPECT_EQ(organizational_domain("co.uk"), "co.uk");
  EXPECT_EQ(organizational_domain("com"), "com");
}

}  // namespace
}  // namespace ringmail::engine
