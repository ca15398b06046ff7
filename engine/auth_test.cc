#include "engine/auth.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

namespace ringmail::engine {
namespace {

TEST(AuthFailures, CountsPerAddressInATenMinuteWindow) {
  AuthFailures f;
  EXPECT_EQ(f.count("[192.0.2.1]", 1000), 0u);
  EXPECT_EQ(f.note("[192.0.2.1]", 1000), 1u);
  EXPECT_EQ(f.note("[192.0.2.1]", 1100), 2u);
  EXPECT_EQ(f.note("[192.0.2.2]", 1100), 1u);
  EXPECT_EQ(f.count("[192.0.2.1]", 1100 + AuthFailures::kWindowS), 2u);
  EXPECT_EQ(f.count("[192.0.2.1]", 1101 + AuthFailures::kWindowS), 0u);
  EXPECT_EQ(f.note("[192.0.2.1]", 1101 + AuthFailures::kWindowS), 1u);  // starts again
}

// An IPv6 host has a /64 to choose addresses from: one count for all of it.
TEST(AuthFailures, IPv6CountsPerSlash64) {
  EXPECT_EQ(AuthFailures::key_of("[IPv6:2001:db8:1:2:3:4:5:6]"), "[IPv6:2001:db8:1:2::/64]");
  EXPECT_EQ(AuthFailures::key_of("[192.0.2.1]"), "[192.0.2.1]");
  EXPECT_EQ(AuthFailures::key_of("[IPv6:not an address]"), "[IPv6:not an address]");
  AuthFailures f;
  f.note("[IPv6:2001:db8:1:2::1]", 50);
  EXPECT_EQ(f.note("[IPv6:2001:db8:1:2:ffff::9]", 50), 2u);
  EXPECT_EQ(f.note("[IPv6:2001:db8:1:3::1]", 50), 1u);
}

// Regression (issue 19, defect 2): each shard counted alone, so N shards
// allowed N times the tries. One table, used from several threads.
TEST(AuthFailures, SharedByShardsOnSeveralThreads) {
  auto shared = std::make_shared<AuthFailures>();
  std::vector<std::thread> shards;
  for (int i = 0; i < 4; ++i) {
    shards.emplace_back([shared] {
      for (int j = 0; j < 250; ++j) shared->note("[198.51.100.7]", 10);
    });
  }
  for (auto& t : shards) t.join();
  EXPECT_EQ(shared->count("[198.51.100.7]", 10), 1000u);
}

// Runs the worker's part when the test says (the checks' thread hop).
class HeldIo final : public storage::PosixFileIo {
 public:
  void submit(storage::BlockingOp* op) override { held.push_back(op); }
  void run() {
    while (!held.empty()) {
      storage::BlockingOp* op = held.front();
      held.pop_front();
      op->done(op, storage::run_blocking_op(op));
    }
  }
  std::deque<storage::BlockingOp*> held;
};

class AuthCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ringmail-auth-XXXXXX";
    dir = ::mkdtemp(tmpl);
    std::filesystem::create_directories(dir + "/example.test");
    write_users({{"alice", "secret"}, {"bob", "secret"}});
    auth = std::make_unique<Authenticator>(io, dir);
    auth->set_counters(&counters);
    auth->set_cache_ttl(300);
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  // A users file with these passwords (a cheap scrypt cost: it is a test).
  void write_users(const std::vector<std::pair<std::string, std::string>>& users) {
    storage::UserDb db;
    for (const auto& [name, pw] : users) {
      storage::UserEntry e;
      e.scheme = storage::UserEntry::Scheme::kScrypt;
      e.log_n = 4;
      e.r = 8;
      e.p = 1;
      ASSERT_TRUE(tls::random_salt(&e.salt));
      ASSERT_TRUE(tls::scrypt_key(pw, e.salt, tls::ScryptParams{4, 8, 1, 32}, &e.key));
      db.set(name, e);
    }
    const std::string path = dir + "/example.test/users";
    std::ofstream(path) << db.serialize();
    // A new mtime even within the same second as the last write.
    ++generation;
    std::filesystem::last_write_time(
        path, std::filesystem::file_time_type::clock::now() + std::chrono::seconds(generation));
  }
  // One AUTH of user/password at `now_s`: its verdict.
  bool login(const std::string& user, const std::string& pw, int64_t now_s) {
    struct C : Authenticator::Check {
      int verdict = -1;
    } c;
    c.on_result = [](Authenticator::Check* x, bool ok) { static_cast<C*>(x)->verdict = ok; };
    auth->start(&c, proto::Credentials{"", user, pw}, now_s);
    EXPECT_EQ(c.verdict, -1);  // never inside the call
    io.run();
    EXPECT_NE(c.verdict, -1);
    return c.verdict == 1;
  }

  std::string dir;
  int generation = 0;
  HeldIo io;
  AuthCounters counters;
  std::unique_ptr<Authenticator> auth;
};

TEST_F(AuthCacheTest, ASecondLoginSkipsTheHash) {
  EXPECT_TRUE(login("alice@example.test", "secret", 100));
  EXPECT_EQ(counters.scrypt_checks, 1u);
  EXPECT_TRUE(login("alice@example.test", "secret", 101));
  EXPECT_TRUE(login("Alice@Example.TEST", "secret", 102));
  EXPECT_EQ(counters.scrypt_checks, 1u);
  EXPECT_EQ(counters.cache_hits, 2u);
  // A wrong password runs the hash, fails, and is never kept.
  EXPECT_FALSE(login("alice@example.test", "wrong", 103));
  EXPECT_FALSE(login("alice@example.test", "wrong", 104));
  EXPECT_EQ(counters.scrypt_checks, 3u);
  // Bob has the same password: his own check, his own entry.
  EXPECT_TRUE(login("bob@example.test", "secret", 105));
  EXPECT_EQ(counters.scrypt_checks, 4u);
  // Past the TTL: the hash again.
  EXPECT_TRUE(login("alice@example.test", "secret", 100 + 300));
  EXPECT_EQ(counters.scrypt_checks, 5u);
}

TEST_F(AuthCacheTest, AChangedOrRemovedUserDropsTheEntry) {
  EXPECT_TRUE(login("alice@example.test", "secret", 100));
  EXPECT_TRUE(login("alice@example.test", "secret", 101));
  EXPECT_EQ(counters.cache_hits, 1u);
  // A new password in the users file: the old one fails at once.
  write_users({{"alice", "changed"}, {"bob", "secret"}});
  EXPECT_FALSE(login("alice@example.test", "secret", 102));
  EXPECT_TRUE(login("alice@example.test", "changed", 103));
  EXPECT_TRUE(login("alice@example.test", "changed", 104));
  EXPECT_EQ(counters.cache_hits, 2u);
  // Removed: refused, although the cache held the password.
  write_users({{"bob", "secret"}});
  EXPECT_FALSE(login("alice@example.test", "changed", 105));
  EXPECT_EQ(counters.cache_hits, 2u);
}

TEST_F(AuthCacheTest, OffMeansEveryLoginHashes) {
  auth->set_cache_ttl(0);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(login("alice@example.test", "secret", 100 + i));
  EXPECT_EQ(counters.scrypt_checks, 3u);
  EXPECT_EQ(counters.cache_hits, 0u);
}

}  // namespace
}  // namespace ringmail::engine
