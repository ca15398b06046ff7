// Aliases: the file format (chasquid's files as they are) and resolution
// (order, suffixes, drop characters, catch-all, pipes, loops, depth).
#include "proto/aliases.h"

#include <gtest/gtest.h>

#include <set>

namespace ringmail::proto {
namespace {

class Dir : public AliasDirectory {
 public:
  std::map<std::string, AliasTable> tables;
  std::map<std::string, std::map<std::string, std::string>> users;  // domain -> key -> name
  std::set<std::string> open;
  bool is_local_domain(const std::string& d) const override {
    return tables.count(d) > 0 || users.count(d) > 0 || open.count(d) > 0;
  }
  const AliasTable* aliases(const std::string& d) const override {
    auto it = tables.find(d);
    return it == tables.end() ? nullptr : &it->second;
  }
  const std::string* find_user(const std::string& d, const std::string& key) const override {
    auto it = users.find(d);
    if (it == users.end()) return nullptr;
    auto u = it->second.find(key);
    return u == it->second.end() ? nullptr : &u->second;
  }
  bool accepts_any_mailbox(const std::string& d) const override { return open.count(d) > 0; }
  void table(const std::string& d, std::string_view text) {
    auto t = AliasTable::parse(text, ".");
    ASSERT_TRUE(t) << t.error();
    tables.emplace(d, std::move(*t));
  }
};

std::vector<std::string> where(const Dir& dir, const std::string& local, const std::string& domain,
                               Resolution::Status want = Resolution::Status::kOk) {
  const Resolution r = resolve_alias(local, domain, dir, AliasOptions{});
  EXPECT_EQ(r.status, want) << local << "@" << domain << ": " << r.detail;
  std::vector<std::string> out;
  for (const auto& d : r.destinations) {
    switch (d.kind) {
      case Destination::Kind::kMailbox:
        out.push_back("mbox " + d.address);
        break;
      case Destination::Kind::kRemote:
        out.push_back("remote " + d.address);
        break;
      case Destination::Kind::kPipe:
        out.push_back("pipe " + d.address + " " + d.command);
        break;
    }
  }
  return out;
}

using V = std::vector<std::string>;

TEST(AliasFile, ChasquidFormat) {
  auto t = AliasTable::parse(
      "# comment\n\npepe: jose\nflowers: rose@backgarden,  lilly@pond\r\nTubo: | writemailto ../x\n"
      "a.ñi_l: azul, índigo\n*: catch@example.org\n",
      ".");
  ASSERT_TRUE(t) << t.error();
  EXPECT_EQ(t->size(), 5u);
  ASSERT_NE(t->find("flowers"), nullptr);
  EXPECT_EQ((*t->find("flowers"))[1].text, "lilly@pond");
  ASSERT_NE(t->find("tubo"), nullptr);
  EXPECT_EQ((*t->find("tubo"))[0].kind, AliasTarget::Kind::kPipe);
  EXPECT_EQ((*t->find("tubo"))[0].text, "writemailto ../x");
  EXPECT_NE(t->find("añi_l"), nullptr);  // drop characters removed from names
  EXPECT_NE(t->find("*"), nullptr);
}

TEST(AliasFile, ErrorsNameTheLine) {
  EXPECT_EQ(AliasTable::parse("ok: x\nbroken line\n", ".").error(),
            "line 2: no ':' (expected \"user: target, ...\")");
  EXPECT_EQ(AliasTable::parse("a:\n", ".").error(), "line 1: alias \"a\" has no target");
  EXPECT_FALSE(AliasTable::parse("a: b, , c\n", "."));
  EXPECT_FALSE(AliasTable::parse("a b: c\n", "."));
  EXPECT_FALSE(AliasTable::parse("a: |  \n", "."));
  EXPECT_FALSE(AliasTable::parse("a: two words\n", "."));
}

TEST(AliasResolve, OrderSuffixesDropCharacters) {
  Dir dir;
  dir.users["d.test"] = {
      {"jose", "jose"}, {"juan", "juan"}, {"firstlast", "first.last"}, {"pepe", "pepe"}};
  dir.table("d.test",
            "pepe: jose\nflowers: rose@garden.example, lilly@pond.example\nlist+x: juan\n");
  EXPECT_EQ(where(dir, "pepe", "d.test"), V{"mbox jose@d.test"});  // an alias before the user
  EXPECT_EQ(where(dir, "Flowers", "d.test"),
            (V{"remote rose@garden.example", "remote lilly@pond.example"}));
  EXPECT_EQ(where(dir, "pe.pe+tag", "d.test"), V{"mbox jose@d.test"});
  EXPECT_EQ(where(dir, "first.last+news", "d.test"), V{"mbox first.last@d.test"});
  EXPECT_EQ(where(dir, "list+x", "d.test"), V{"mbox juan@d.test"});  // with its suffix first
  where(dir, "list", "d.test", Resolution::Status::kUnknown);
  where(dir, "nobody", "d.test", Resolution::Status::kUnknown);
  EXPECT_EQ(where(dir, "postmaster", "d.test"), V{"mbox postmaster@d.test"});
  EXPECT_EQ(where(dir, "x", "elsewhere.example"), V{"remote x@elsewhere.example"});
}

TEST(AliasResolve, CatchAllPipesAndChains) {
  Dir dir;
  dir.users["d.test"] = {{"alice", "alice"}};
  dir.users["e.test"] = {{"bob", "bob"}};
  dir.table(
      "d.test",
      "*: inbox@gmail.example\nsales: team\nteam: alice, bob@e.test, archive\narchive: | /bin/cat\n"
      "alice: alice, alice@backup.example\n");
  dir.table("e.test", "*: *@pond.example\n");
  EXPECT_EQ(where(dir, "anything", "d.test"), V{"remote inbox@gmail.example"});
  EXPECT_EQ(where(dir, "sales", "d.test"), (V{"mbox alice@d.test", "remote alice@backup.example",
                                              "mbox bob@e.test", "pipe archive@d.test /bin/cat"}));
  EXPECT_EQ(where(dir, "Lilly+x", "e.test"),
            V{"remote Lilly+x@pond.example"});                   // '*' is the local part as given
  EXPECT_EQ(where(dir, "bob", "e.test"), V{"mbox bob@e.test"});  // a user before the catch-all
  EXPECT_EQ(where(dir, "a*b", "e.test"),
            V{"remote a*b@pond.example"});  // found by the fuzzer: no endless '*'
}

TEST(AliasResolve, LoopsAndDepth) {
  Dir dir;
  dir.users["d.test"] = {};
  std::string chain;
  for (int i = 0; i < 12; ++i)
    chain += "a" + std::to_string(i) + ": a" + std::to_string(i + 1) + "\n";
  dir.table("d.test", "x: y\ny: x\n*: nobody\n" + chain + "a12: me@far.example\n");
  where(dir, "x", "d.test", Resolution::Status::kLoop);
  where(dir, "whoever", "d.test", Resolution::Status::kLoop);  // the catch-all back to itself
  where(dir, "a0", "d.test", Resolution::Status::kTooDeep);
  EXPECT_EQ(where(dir, "a5", "d.test"), V{"remote me@far.example"});
}

TEST(AliasResolve, DomainWithoutFilesTakesAnyMailbox) {
  Dir dir;
  dir.open.insert("open.test");
  EXPECT_EQ(where(dir, "First.Last+tag", "open.test"), V{"mbox first.last+tag@open.test"});
}

}  // namespace
}  // namespace ringmail::proto
