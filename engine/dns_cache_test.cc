#include "engine/dns_cache.h"

#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <vector>

namespace ringmail::engine {
namespace {

// The DNS servers' side: records each question; the test answers them.
class Upstream final : public Resolver {
 public:
  struct Question {
    std::string type, name;
    std::function<void(TxtAnswer)> txt;
    std::function<void(MxAnswer)> mx;
    std::function<void(AddrAnswer)> addr;
  };
  void txt(const std::string& name, std::function<void(TxtAnswer)> done) override {
    asked.push_back({"TXT", name, std::move(done), nullptr, nullptr});
  }
  void ptr(const std::string& name, std::function<void(TxtAnswer)> done) override {
    asked.push_back({"PTR", name, std::move(done), nullptr, nullptr});
  }
  void mx(const std::string& name, std::function<void(MxAnswer)> done) override {
    asked.push_back({"MX", name, nullptr, std::move(done), nullptr});
  }
  void addresses(const std::string& name, std::function<void(AddrAnswer)> done) override {
    asked.push_back({"A", name, nullptr, nullptr, std::move(done)});
  }
  void tick() override {}
  // Answers the oldest question.
  void answer_txt(DnsStatus st, uint32_t ttl, std::vector<std::string> records = {"v=spf1 -all"}) {
    auto q = std::move(asked.front());
    asked.pop_front();
    q.txt(TxtAnswer{st, std::move(records), ttl});
  }
  std::deque<Question> asked;
};

class DnsCacheTest : public ::testing::Test {
 protected:
  // Asks for the TXT of `name`; the answer lands in `got` once the loop runs.
  void ask(const std::string& name) {
    cache.txt(name, [this](TxtAnswer a) { got.push_back(std::move(a)); });
  }

  ManualClock clock;
  Upstream up;
  DnsCounters counters;
  DnsCache cache{up, clock, DnsCacheLimits{1, 3600, 3}, &counters};
  std::vector<TxtAnswer> got;
};

TEST_F(DnsCacheTest, KeepsAnAnswerForItsTtl) {
  ask("example.test");
  ASSERT_EQ(up.asked.size(), 1u);
  up.answer_txt(DnsStatus::kOk, 300);
  cache.run_ready();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].records, std::vector<std::string>{"v=spf1 -all"});
  // Asked again, in other spellings, within the TTL: no query.
  clock.advance_ms(299'000);
  ask("EXAMPLE.test");
  ask("example.test.");
  EXPECT_TRUE(up.asked.empty());
  cache.run_ready();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2].records, got[0].records);
  // Past the TTL: asked again.
  clock.advance_ms(1'000);
  ask("example.test");
  EXPECT_EQ(up.asked.size(), 1u);
  EXPECT_EQ(counters.lookups, 4u);
  EXPECT_EQ(counters.hits, 2u);
  EXPECT_EQ(counters.queries, 2u);
}

TEST_F(DnsCacheTest, TtlIsClampedToTheLimits) {
  ask("short.test");
  up.answer_txt(DnsStatus::kOk, 0);  // below ttl_min_s = 1
  ask("long.test");
  up.answer_txt(DnsStatus::kOk, 100000);  // above ttl_max_s = 3600
  cache.run_ready();
  clock.advance_ms(999);
  ask("short.test");
  EXPECT_TRUE(up.asked.empty());
  clock.advance_ms(1);
  ask("short.test");
  EXPECT_EQ(up.asked.size(), 1u);
  up.asked.clear();
  clock.advance_ms(3599'000);
  ask("long.test");
  EXPECT_EQ(up.asked.size(), 1u);
}

TEST_F(DnsCacheTest, NegativeAnswersAreKeptForTheirTtl) {
  ask("nowhere.test");
  up.answer_txt(DnsStatus::kNxDomain, 60, {});
  ask("empty.test");
  up.answer_txt(DnsStatus::kNoData, 30, {});
  cache.run_ready();
  ask("nowhere.test");
  ask("empty.test");
  EXPECT_TRUE(up.asked.empty());
  cache.run_ready();
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[2].status, DnsStatus::kNxDomain);
  EXPECT_EQ(got[3].status, DnsStatus::kNoData);
  clock.advance_ms(30'000);
  ask("empty.test");
  ask("nowhere.test");
  EXPECT_EQ(up.asked.size(), 1u);  // only the one whose TTL ended
}

TEST_F(DnsCacheTest, TemporaryFailuresAreNotKept) {
  ask("flaky.test");
  up.answer_txt(DnsStatus::kTempFail, 300, {});
  cache.run_ready();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].status, DnsStatus::kTempFail);
  ask("flaky.test");
  EXPECT_EQ(up.asked.size(), 1u);
  EXPECT_EQ(counters.temp_failures, 1u);
}

TEST_F(DnsCacheTest, ConcurrentQuestionsShareOneQuery) {
  for (int i = 0; i < 5; ++i) ask("busy.test");
  EXPECT_EQ(up.asked.size(), 1u);
  EXPECT_EQ(counters.merged, 4u);
  up.answer_txt(DnsStatus::kOk, 60);
  EXPECT_TRUE(got.empty());  // handed out from the loop
  cache.run_ready();
  EXPECT_EQ(got.size(), 5u);
  // A temporary failure reaches every waiter too.
  for (int i = 0; i < 3; ++i) ask("down.test");
  up.answer_txt(DnsStatus::kTempFail, 0, {});
  cache.run_ready();
  EXPECT_EQ(got.size(), 8u);
  EXPECT_EQ(got[7].status, DnsStatus::kTempFail);
}

TEST_F(DnsCacheTest, LeastRecentlyUsedGoesFirst) {
  for (const char* n : {"a.test", "b.test", "c.test"}) {
    ask(n);
    up.answer_txt(DnsStatus::kOk, 300);
  }
  cache.run_ready();
  EXPECT_EQ(cache.size(), 3u);
  ask("a.test");  // a is now the most recently used; b the least
  ask("d.test");
  up.answer_txt(DnsStatus::kOk, 300);
  cache.run_ready();
  EXPECT_EQ(cache.size(), 3u);
  ask("a.test");
  ask("c.test");
  ask("d.test");
  EXPECT_TRUE(up.asked.empty());
  ask("b.test");
  EXPECT_EQ(up.asked.size(), 1u);
}

TEST_F(DnsCacheTest, AnswersNeverRunInsideTheCall) {
  ask("x.test");
  up.answer_txt(DnsStatus::kOk, 300);
  cache.run_ready();
  got.clear();
  ask("x.test");
  EXPECT_TRUE(got.empty());
  EXPECT_TRUE(cache.has_ready());
  // A chain answered from the cache runs to its end in one run_ready().
  int depth = 0;
  std::function<void(TxtAnswer)> next = [&](TxtAnswer) {
    if (++depth < 4) cache.txt("x.test", next);
  };
  cache.txt("x.test", next);
  cache.run_ready();
  EXPECT_EQ(depth, 4);
  EXPECT_FALSE(cache.has_ready());
}

TEST_F(DnsCacheTest, KindsAreSeparateAndClearForgetsAnswers) {
  ask("both.test");
  up.answer_txt(DnsStatus::kOk, 300);
  MxAnswer mx;
  cache.mx("both.test", [&](MxAnswer a) { mx = std::move(a); });
  ASSERT_EQ(up.asked.size(), 1u);
  EXPECT_EQ(up.asked.front().type, "MX");
  auto q = std::move(up.asked.front());
  up.asked.pop_front();
  q.mx(MxAnswer{DnsStatus::kOk, {{10, "mx.both.test"}}, 300});
  cache.run_ready();
  ASSERT_EQ(mx.records.size(), 1u);
  EXPECT_EQ(mx.records[0].host, "mx.both.test");
  // A query out when the cache is cleared still reaches its waiter.
  ask("later.test");
  cache.clear();
  EXPECT_EQ(cache.size(), 0u);
  up.answer_txt(DnsStatus::kOk, 300);
  cache.run_ready();
  EXPECT_EQ(got.size(), 2u);
  ask("both.test");
  EXPECT_EQ(up.asked.size(), 1u);
}

}  // namespace
}  // namespace ringmail::engine
