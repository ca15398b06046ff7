#include "storage/userdb.h"

#include <gtest/gtest.h>

namespace ringmail::storage {
namespace {

// Written by Debian's chasquid-util 1.11 (user-add alice@example.test and
// Bob@example.test): raw UTF-8 and \x escapes in the byte strings.
const char kChasquid[] = R"(users: {
  key: "alice"
  value: {
    scrypt: {
      logN: 14
      r: 8
      p: 1
      keyLen: 32
      salt: "\x0e\xc5\xdb\xda=8b.\xc5\xcd癠\xb0aq"
      encrypted: "\rZ.\xb6EG\xbfN\x02@q\xac\xc7>,\xfbI\xd4VA\x8a\x9d\xe8\\\xe4\xc1H\xf7\x87N\t\x95"
    }
  }
}
users: {
  key: "bob"
  value: {
    plain: { password: "hunter2" }
  }
}
users { key: "carol" value { denied {} } }
)";

TEST(UserDb, ReadsChasquidFiles) {
  auto db = UserDb::parse(kChasquid);
  ASSERT_TRUE(db) << db.error();
  EXPECT_TRUE(db->from_chasquid());
  EXPECT_EQ(db->names(), (std::vector<std::string>{"alice", "bob", "carol"}));
  const UserEntry* a = db->find("alice");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->scheme, UserEntry::Scheme::kScrypt);
  EXPECT_EQ(a->log_n, 14);
  EXPECT_EQ(a->r, 8);
  EXPECT_EQ(a->p, 1);
  EXPECT_EQ(a->salt.size(), 16u);  // "癠" is three bytes
  EXPECT_EQ(a->salt.substr(0, 2), "\x0e\xc5");
  EXPECT_EQ(a->key.size(), 32u);
  EXPECT_EQ(a->key[0], '\r');
  EXPECT_EQ(db->find("bob")->scheme, UserEntry::Scheme::kPlain);
  EXPECT_EQ(db->find("bob")->password, "hunter2");
  EXPECT_EQ(db->find("carol")->scheme, UserEntry::Scheme::kDenied);
  EXPECT_EQ(db->find("dave"), nullptr);
}

TEST(UserDb, OwnFormatRoundTrips) {
  auto db = UserDb::parse(kChasquid);
  ASSERT_TRUE(db);
  const std::string text = db->serialize();
  auto again = UserDb::parse(text);
  ASSERT_TRUE(again) << again.error() << "\n" << text;
  EXPECT_FALSE(again->from_chasquid());
  EXPECT_EQ(again->find("alice")->key, db->find("alice")->key);
  EXPECT_EQ(again->find("alice")->salt, db->find("alice")->salt);
  // A plain-text password is not written back: that user is denied.
  EXPECT_EQ(again->find("bob")->scheme, UserEntry::Scheme::kDenied);
  EXPECT_EQ(again->serialize(), text);
}

TEST(UserDb, ErrorsNameTheLine) {
  EXPECT_EQ(UserDb::parse("# c\nalice $scrypt$ln=14,r=8,p=1$c2FsdA==$a2V5\nalice !\n").error(),
            "line 3: 'alice' is listed twice");
  EXPECT_EQ(UserDb::parse("Alice !\n").error(),
            "line 1: 'Alice' is not a user name (lower case, no spaces or '@')");
  EXPECT_EQ(UserDb::parse("\n\nbob $scrypt$ln=x$c2FsdA==$a2V5\n").error(),
            "line 3: the password of 'bob' is not $scrypt$ln=N,r=N,p=N$salt$key");
  EXPECT_EQ(UserDb::parse("bob\n").error(), "line 1: expected 'user $scrypt$...'");
  EXPECT_EQ(
      UserDb::parse("users: {\n  key: \"a\"\n  value: { scrypt: { salt: \"\\q\" } }\n}\n").error(),
      "line 3: unknown escape \\q");
  EXPECT_EQ(UserDb::parse("users: { key: \"a\"").error(), "line 1: missing '}'");
}

TEST(UserDb, Normalize) {
  auto n = normalize_user("Alice@Example.TEST");
  ASSERT_TRUE(n) << n.error();
  EXPECT_EQ(n->local, "alice");
  EXPECT_EQ(n->domain, "example.test");
  n = normalize_user("bob@Bücher.example");
  ASSERT_TRUE(n) << n.error();
  EXPECT_EQ(n->domain, "xn--bcher-kva.example");
  EXPECT_FALSE(normalize_user("nobody"));
  EXPECT_FALSE(normalize_user("a b@example.test"));
  EXPECT_FALSE(normalize_user("a@exa mple.test"));
  EXPECT_FALSE(normalize_user("@example.test"));
}

}  // namespace
}  // namespace ringmail::storage
