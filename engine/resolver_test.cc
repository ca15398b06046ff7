// The c-ares resolver on both backends against a real DNS server on
// loopback (tests/dns_server.py, python3-dnslib).
#include "engine/resolver.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>

#include "engine/test_backends.h"
#include "engine/test_dns.h"

namespace ringmail::engine {
namespace {

const char kZone[] = R"(
mx.test. 60 IN MX 10 mx1.mx.test.
mx.test. 60 IN MX 20 mx2.mx.test.
mx1.mx.test. 60 IN A 127.0.0.2
mx2.mx.test. 60 IN A 127.0.0.3
mx2.mx.test. 60 IN AAAA ::1
nomx.test. 60 IN A 127.0.0.4
nullmx.test. 60 IN MX 0 .
)";

DnsServer* server() {
  static DnsServer s(kZone);
  return &s;
}

class ResolverTest : public ::testing::TestWithParam<config::BackendKind> {
 protected:
  void SetUp() override {
    std::string why;
    if (GetParam() == config::BackendKind::kUring && !uring_available(&why)) GTEST_SKIP() << why;
    ASSERT_GT(server()->port(), 0) << "tests/dns_server.py did not start (python3-dnslib?)";
    b = make_backend(GetParam(), &why);
    ASSERT_NE(b, nullptr) << why;
    auto made = AresResolver::create(*b, "127.0.0.1:" + std::to_string(server()->port()), 1000, 2);
    ASSERT_TRUE(made) << made.error();
    r = std::move(*made);
  }
  void TearDown() override {
    r.reset();
    b.reset();
  }
  bool run_until(const std::function<bool()>& done, int ms = 8000) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!done() && std::chrono::steady_clock::now() < end) {
      b->wait(20);
      r->tick();
    }
    return done();
  }
  MxAnswer mx(const std::string& d) {
    MxAnswer out;
    bool got = false;
    r->mx(d, [&](MxAnswer a) {
      out = std::move(a);
      got = true;
    });
    EXPECT_TRUE(run_until([&] { return got; })) << d;
    return out;
  }
  AddrAnswer addrs(const std::string& h) {
    AddrAnswer out;
    bool got = false;
    r->addresses(h, [&](AddrAnswer a) {
      out = std::move(a);
      got = true;
    });
    EXPECT_TRUE(run_until([&] { return got; })) << h;
    return out;
  }
  std::unique_ptr<Backend> b;
  std::unique_ptr<AresResolver> r;
};

TEST_P(ResolverTest, MxRecords) {
  MxAnswer a = mx("mx.test");
  ASSERT_EQ(a.status, DnsStatus::kOk);
  ASSERT_EQ(a.records.size(), 2u);
  auto plan = proto::plan_mx("mx.test", a.records, "", 1);
  EXPECT_EQ(plan.hosts, (std::vector<std::string>{"mx1.mx.test", "mx2.mx.test"}));
  EXPECT_EQ(r->pending(), 0u);
}

TEST_P(ResolverTest, NullMxNoMxAndNoDomain) {
  MxAnswer n = mx("nullmx.test");
  ASSERT_EQ(n.status, DnsStatus::kOk);
  EXPECT_EQ(proto::plan_mx("nullmx.test", n.records, "", 1).kind, proto::MxPlan::Kind::kNullMx);
  EXPECT_EQ(mx("nomx.test").status, DnsStatus::kNoData);
  EXPECT_EQ(mx("nothere.test").status, DnsStatus::kNxDomain);
}

TEST_P(ResolverTest, AddressesIpv6First) {
  AddrAnswer a = addrs("mx2.mx.test");
  ASSERT_EQ(a.status, DnsStatus::kOk);
  ASSERT_EQ(a.addrs.size(), 2u);
  EXPECT_EQ(ip_text(a.addrs[0]), "::1");
  EXPECT_EQ(ip_text(a.addrs[1]), "127.0.0.3");
  AddrAnswer one = addrs("nomx.test");
  ASSERT_EQ(one.addrs.size(), 1u);
  EXPECT_EQ(ip_text(one.addrs[0]), "127.0.0.4");
  EXPECT_EQ(addrs("nothere.test").status, DnsStatus::kNxDomain);
}

TEST_P(ResolverTest, ManyAtOnce) {
  int answered = 0;
  for (int i = 0; i < 50; ++i) {
    r->mx(i % 2 ? "mx.test" : "nothere.test", [&](MxAnswer a) {
      EXPECT_NE(a.status, DnsStatus::kTempFail);
      ++answered;
    });
  }
  EXPECT_TRUE(run_until([&] { return answered == 50; }));
}

TEST_P(ResolverTest, NoServerIsATemporaryFailure) {
  // A port nobody listens on: refused or timed out, never an answer.
  auto made = AresResolver::create(*b, "127.0.0.1:9", 200, 1);
  ASSERT_TRUE(made) << made.error();
  r = std::move(*made);
  EXPECT_EQ(mx("mx.test").status, DnsStatus::kTempFail);
}

TEST_P(ResolverTest, DestroyedWithLookupsPending) {
  bool called = false;
  r->mx("mx.test", [&](MxAnswer) { called = true; });
  r.reset();  // must not call back or leave polls behind
  for (int i = 0; i < 10; ++i) b->wait(5);
  EXPECT_FALSE(called);
}

// Regression (issue 19, defect 8): SIGHUP did not apply new dns_servers.
// A lookup in flight on the old (silent) server finishes there; one started
// while switching waits and goes to the new server.
TEST_P(ResolverTest, SetServersSwitchesAfterPendingLookups) {
  auto made = AresResolver::create(*b, "127.0.0.1:9", 300, 1);  // nobody answers there
  ASSERT_TRUE(made) << made.error();
  r = std::move(*made);
  bool old_done = false, new_done = false;
  MxAnswer old_answer, new_answer;
  r->mx("mx.test", [&](MxAnswer a) {
    old_answer = std::move(a);
    old_done = true;
  });
  std::string applied = "not yet";
  r->set_servers("127.0.0.1:" + std::to_string(server()->port()),
                 [&](const std::string& e) { applied = e; });
  r->mx("mx.test", [&](MxAnswer a) {
    new_answer = std::move(a);
    new_done = true;
  });
  EXPECT_EQ(r->pending(), 2u);
  ASSERT_TRUE(run_until([&] { return old_done && new_done; }));
  EXPECT_EQ(old_answer.status, DnsStatus::kTempFail);
  EXPECT_EQ(applied, "");
  EXPECT_EQ(new_answer.status, DnsStatus::kOk);
  EXPECT_EQ(new_answer.records.size(), 2u);
  // Bad servers are refused and the current ones stay.
  r->set_servers("not a server list", [&](const std::string& e) { applied = e; });
  run_until([&] { return applied != ""; }, 3000);
  EXPECT_NE(applied.find("DNS servers 'not a server list'"), std::string::npos) << applied;
  EXPECT_EQ(mx("mx.test").status, DnsStatus::kOk);
}

RINGMAIL_ON_BOTH_BACKENDS(ResolverTest);

}  // namespace
}  // namespace ringmail::engine
