// Outbound delivery sessions against Postfix's smtp-sink on loopback
// addresses, with MX records from a local DNS server: the right MX, fallback
// to the next one, per-recipient 4xx/5xx, null MX and NXDOMAIN.
#include "engine/outbound.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "engine/outbound_dispatch.h"
#include "engine/test_backends.h"
#include "engine/test_dns.h"

namespace ringmail::engine {
namespace {

const char kZone[] = R"(
mx.test. 60 IN MX 10 mx1.mx.test.
mx.test. 60 IN MX 20 mx2.mx.test.
mx1.mx.test. 60 IN A 127.0.0.2
mx2.mx.test. 60 IN A 127.0.0.3
down.test. 60 IN MX 10 mx1.down.test.
mx1.down.test. 60 IN A 127.0.0.9
nullmx.test. 60 IN MX 0 .
direct.test. 60 IN A 127.0.0.3
cname.test. 60 IN CNAME mx.test.
viacname.test. 60 IN MX 10 alias.viacname.test.
alias.viacname.test. 60 IN CNAME mx2.mx.test.
dual.test. 60 IN MX 10 mx.dual.test.
mx.dual.test. 60 IN AAAA ::1
mx.dual.test. 60 IN A 127.0.0.3
)";

DnsServer* dns() {
  static DnsServer s(kZone);
  return &s;
}

int free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

// Postfix's smtp-sink on ip:port with extra options, until destroyed.
class Sink {
 public:
  Sink(const std::string& ip, int port, std::vector<std::string> opts) {
    pid_ = ::fork();
    if (pid_ == 0) {
      // Root has it drop to postfix; anyone else stays themselves (-u
      // would fail for them).
      std::vector<std::string> args{"smtp-sink"};
      if (::geteuid() == 0) args.insert(args.end(), {"-u", "postfix"});
      args.insert(args.end(), opts.begin(), opts.end());
      args.push_back(ip + ":" + std::to_string(port));
      args.push_back("64");
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv("/usr/sbin/smtp-sink", argv.data());
      ::_exit(127);
    }
    // Wait until it listens (10 s: the machine may be busy).
    const bool v6 = ip.front() == '[';
    for (int i = 0; i < 500; ++i) {
      int s = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
      sockaddr_storage ss{};
      socklen_t len;
      if (v6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(static_cast<uint16_t>(port));
        ::inet_pton(AF_INET6, ip.substr(1, ip.size() - 2).c_str(), &a->sin6_addr);
        len = sizeof *a;
      } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_port = htons(static_cast<uint16_t>(port));
        ::inet_pton(AF_INET, ip.c_str(), &a->sin_addr);
        len = sizeof *a;
      }
      const bool up = ::connect(s, reinterpret_cast<sockaddr*>(&ss), len) == 0;
      ::close(s);
      if (up) return;
      ::usleep(20000);
    }
  }
  ~Sink() {
    ::kill(pid_, SIGTERM);
    int st;
    ::waitpid(pid_, &st, 0);
  }

 private:
  pid_t pid_ = -1;
};

class OutboundTest : public ::testing::TestWithParam<config::BackendKind> {
 protected:
  void SetUp() override {
    std::string why;
    if (GetParam() == config::BackendKind::kUring && !uring_available(&why)) GTEST_SKIP() << why;
    if (::access("/usr/sbin/smtp-sink", X_OK) != 0) GTEST_SKIP() << "no smtp-sink (postfix)";
    ASSERT_GT(dns()->port(), 0);
    b = make_backend(GetParam(), &why);
    ASSERT_NE(b, nullptr) << why;
    auto made = AresResolver::create(*b, "127.0.0.1:" + std::to_string(dns()->port()), 1000, 2);
    ASSERT_TRUE(made) << made.error();
    r = std::move(*made);
    port = free_port();
  }
  void TearDown() override {
    r.reset();
    b.reset();
  }
  OutboundMessage message(const std::string& id, std::vector<std::string> rcpts) {
    OutboundMessage m;
    m.id = id;
    m.from = proto::Address{"alice", "example.test"};
    for (const auto& x : rcpts) {
      const size_t at = x.find('@');
      m.rcpts.push_back(proto::Address{x.substr(0, at), x.substr(at + 1)});
    }
    m.data = "Subject: " + id + "\r\n\r\nhello\r\n.dot line\r\n";
    return m;
  }
  // The session takes `msgs` in order, and counts the results it reports.
  OutboundSession::Pull pull_from(std::vector<OutboundMessage*> msgs) {
    return [msgs, i = size_t{0}]() mutable { return i < msgs.size() ? msgs[i++] : nullptr; };
  }
  OutboundSession::Result count_results() {
    return [this](OutboundMessage*) { ++results; };
  }
  int results = 0;
  std::string source_v4;
  uint32_t connect_timeout_s = 3;
  // Runs one session to the end.
  std::unique_ptr<OutboundSession> deliver(const std::string& domain,
                                           std::vector<OutboundMessage*> msgs) {
    OutboundSession::Params p;
    p.helo = "relay.example.test";
    p.port = static_cast<uint16_t>(port);
    p.connect_timeout_s = connect_timeout_s;
    p.command_timeout_s = 5;
    p.source_v4 = source_v4;
    bool done = false;
    results = 0;
    auto s = std::make_unique<OutboundSession>(*b, *r, p, domain, pull_from(msgs), count_results(),
                                               [&] { done = true; });
    s->start();
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!(done && s->finished()) && std::chrono::steady_clock::now() < end) {
      b->wait(20);
      r->tick();
      s->tick(std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::steady_clock::now().time_since_epoch())
                  .count());
    }
    EXPECT_TRUE(done && s->finished()) << domain;
    EXPECT_EQ(results, static_cast<int>(msgs.size())) << domain;  // each reported once
    return s;
  }
  std::unique_ptr<Backend> b;
  std::unique_ptr<AresResolver> r;
  int port = 0;
};

TEST_P(OutboundTest, DeliversSeveralMessagesToTheBestMx) {
  Sink mx1("127.0.0.2", port, {});
  Sink mx2("127.0.0.3", port, {"-f", "MAIL"});  // must not be used
  auto a = message("A", {"b@mx.test", "c@mx.test"});
  auto c = message("C", {"d@mx.test"});
  auto s = deliver("mx.test", {&a, &c});
  EXPECT_EQ(s->remote_host(), "mx1.mx.test");
  for (auto* m : {&a, &c}) {
    for (const auto& res : m->results) {
      EXPECT_EQ(res.outcome, proto::Outcome::kOk) << m->id << ": " << res.reply;
      EXPECT_EQ(res.reply.substr(0, 3), "250") << res.reply;
    }
  }
  EXPECT_FALSE(s->used_tls());  // smtp-sink offers no STARTTLS
}

TEST_P(OutboundTest, FallsBackToTheNextMx) {
  // Nothing listens on mx1: connection refused, then mx2.
  Sink mx2("127.0.0.3", port, {});
  auto a = message("A", {"b@mx.test"});
  auto s = deliver("mx.test", {&a});
  EXPECT_EQ(s->remote_host(), "mx2.mx.test");
  EXPECT_EQ(a.results[0].outcome, proto::Outcome::kOk) << a.results[0].reply;
}

TEST_P(OutboundTest, NoMxUsesTheDomainsAddress) {
  Sink direct("127.0.0.3", port, {});
  auto a = message("A", {"b@direct.test"});
  auto s = deliver("direct.test", {&a});
  EXPECT_EQ(a.results[0].outcome, proto::Outcome::kOk) << a.results[0].reply;
  EXPECT_EQ(s->remote_host(), "direct.test");
}

TEST_P(OutboundTest, CnamesAreFollowed) {
  Sink mx1("127.0.0.2", port, {});
  Sink mx2("127.0.0.3", port, {});
  // The domain is an alias of one with MX records.
  auto a = message("A", {"b@cname.test"});
  auto s = deliver("cname.test", {&a});
  EXPECT_EQ(a.results[0].outcome, proto::Outcome::kOk) << a.results[0].reply;
  EXPECT_EQ(s->remote_host(), "mx1.mx.test");
  // The MX host is an alias (not allowed by RFC 5321, found in the wild).
  auto c = message("C", {"b@viacname.test"});
  s = deliver("viacname.test", {&c});
  EXPECT_EQ(c.results[0].outcome, proto::Outcome::kOk) << c.results[0].reply;
  EXPECT_EQ(s->remote_host(), "alias.viacname.test");
}

TEST_P(OutboundTest, IpV6FirstThenIpV4) {
  {
    Sink v6("[::1]", port, {});
    Sink v4("127.0.0.3", port, {"-f", "MAIL"});  // must not be used
    auto a = message("A", {"b@dual.test"});
    deliver("dual.test", {&a});
    EXPECT_EQ(a.results[0].outcome, proto::Outcome::kOk) << a.results[0].reply;
  }
  // Nothing on ::1: IPv4 next.
  Sink v4("127.0.0.3", port, {});
  auto a = message("A", {"b@dual.test"});
  deliver("dual.test", {&a});
  EXPECT_EQ(a.results[0].outcome, proto::Outcome::kOk) << a.results[0].reply;
}

TEST_P(OutboundTest, AnIpV6BlackHoleGivesWayToIpV4) {
  // A listener on [::1] whose accept queue is full and never drained: the
  // kernel drops further SYNs, so a connect there just hangs.
  int l = ::socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 a6{};
  a6.sin6_family = AF_INET6;
  a6.sin6_port = htons(static_cast<uint16_t>(port));
  a6.sin6_addr = in6addr_loopback;
  ASSERT_EQ(::bind(l, reinterpret_cast<sockaddr*>(&a6), sizeof a6), 0);
  ASSERT_EQ(::listen(l, 0), 0);
  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) {
    int c = ::socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(c, reinterpret_cast<sockaddr*>(&a6), sizeof a6);
    fillers.push_back(c);
  }
  ::usleep(100000);
  Sink v4("127.0.0.3", port, {});
  connect_timeout_s = 30;  // longer than deliver()'s 20 s: only the head start gets it through
  auto a = message("A", {"b@dual.test"});
  deliver("dual.test", {&a});
  EXPECT_EQ(a.results[0].outcome, proto::Outcome::kOk) << a.results[0].reply;
  for (int c : fillers) ::close(c);
  ::close(l);
}

TEST_P(OutboundTest, SourceAddress) {
  // smtp-sink dumps each transaction with the client's address.
  char tmpl[] = "/tmp/ringmail-sink-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dump = tmpl;
  ::chmod(dump.c_str(), 0777);  // smtp-sink writes as postfix
  {
    Sink mx1("127.0.0.2", port, {"-d", dump + "/%M."});
    source_v4 = "127.0.0.77";
    auto a = message("A", {"b@mx.test"});
    deliver("mx.test", {&a});
    EXPECT_EQ(a.results[0].outcome, proto::Outcome::kOk) << a.results[0].reply;
  }
  std::string seen;
  for (const auto& e : std::filesystem::directory_iterator(dump)) {
    std::ifstream f(e.path());
    seen.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  EXPECT_NE(seen.find("X-Client-Addr: 127.0.0.77"), std::string::npos) << seen;
  std::filesystem::remove_all(dump);
  Sink mx1("127.0.0.2", port, {});
  // An address this machine does not have: a clear reason, retried later.
  source_v4 = "192.0.2.1";
  auto c = message("C", {"b@mx.test"});
  deliver("mx.test", {&c});
  EXPECT_EQ(c.results[0].outcome, proto::Outcome::kTemp);
  EXPECT_NE(c.results[0].reply.find("cannot use the source address 192.0.2.1"), std::string::npos)
      << c.results[0].reply;
}

TEST_P(OutboundTest, PerRecipientTemporaryAndPermanentReplies) {
  Sink soft("127.0.0.2", port, {"-r", "RCPT"});
  auto a = message("A", {"b@mx.test"});
  deliver("mx.test", {&a});
  EXPECT_EQ(a.results[0].outcome, proto::Outcome::kTemp) << a.results[0].reply;
  EXPECT_EQ(a.results[0].reply.substr(0, 1), "4");
  EXPECT_EQ(a.results[0].cause, proto::Cause::kReply);
}

TEST_P(OutboundTest, HardRejectIsPermanent) {
  Sink hard("127.0.0.2", port, {"-f", "RCPT"});
  auto a = message("A", {"b@mx.test", "c@mx.test"});
  deliver("mx.test", {&a});
  for (const auto& res : a.results) {
    EXPECT_EQ(res.outcome, proto::Outcome::kPerm) << res.reply;
    EXPECT_EQ(res.reply.substr(0, 1), "5");
    EXPECT_EQ(res.cause, proto::Cause::kReply);
  }
}

TEST_P(OutboundTest, DnsOutcomes) {
  auto n = message("N", {"x@nullmx.test"});
  deliver("nullmx.test", {&n});
  EXPECT_EQ(n.results[0].outcome, proto::Outcome::kPerm);
  EXPECT_NE(n.results[0].reply.find("null MX"), std::string::npos) << n.results[0].reply;
  EXPECT_EQ(n.results[0].cause, proto::Cause::kDns);
  auto x = message("X", {"x@nothere.test"});
  deliver("nothere.test", {&x});
  EXPECT_EQ(x.results[0].outcome, proto::Outcome::kPerm);
  EXPECT_NE(x.results[0].reply.find("does not exist"), std::string::npos);
  EXPECT_EQ(x.results[0].cause, proto::Cause::kDns);
  // Every MX down: a temporary failure naming the last error.
  auto d = message("D", {"x@down.test"});
  deliver("down.test", {&d});
  EXPECT_EQ(d.results[0].outcome, proto::Outcome::kTemp);
  EXPECT_NE(d.results[0].reply.find("127.0.0.9"), std::string::npos) << d.results[0].reply;
  EXPECT_EQ(d.results[0].cause, proto::Cause::kConnect);
}

// A DNS server that does not answer fails the attempt for now and says it
// was DNS (the queue then tries again in seconds); servers that refuse the
// connection are the destination's own trouble.
TEST_P(OutboundTest, ATemporaryDnsFailureIsMarkedAsSuch) {
  auto refused = message("R", {"x@down.test"});
  deliver("down.test", {&refused});
  EXPECT_EQ(refused.results[0].outcome, proto::Outcome::kTemp);
  EXPECT_FALSE(refused.dns_failed);
  auto dead = AresResolver::create(*b, "127.0.0.1:9", 200, 1);  // nothing answers there
  ASSERT_TRUE(dead) << dead.error();
  r = std::move(*dead);
  auto m = message("M", {"x@mx.test"});
  deliver("mx.test", {&m});
  EXPECT_EQ(m.results[0].outcome, proto::Outcome::kTemp);
  EXPECT_EQ(m.results[0].reply, "MX lookup for mx.test failed for now");
  EXPECT_EQ(m.results[0].cause, proto::Cause::kDns);
  EXPECT_TRUE(m.dns_failed);
}

// A receiver that offers STARTTLS: ringmaild itself (the dev configuration's
// self-signed certificate), taking mail for mx.test.
TEST_P(OutboundTest, StarttlsWithARealServer) {
  char dir[] = "/tmp/ringmail-outbound-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string cfg = std::string(dir) + "/r.toml";
  {
    FILE* f = std::fopen(cfg.c_str(), "w");
    std::fprintf(
        f,
        "hostname = \"mx1.mx.test\"\ndata_dir = \"%s/data\"\nlocal_domains = [\"mx.test\"]\n"
        "threads = 1\n[[listener]]\naddress = \"127.0.0.2:%d\"\nkind = \"smtp\"\n"
        "[tls]\nself_signed = true\n",
        dir, port);
    std::fclose(f);
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    const std::string bin = std::string(RINGMAIL_BUILD_DIR) + "/engine/ringmaild";
    const int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::execl(bin.c_str(), "ringmaild", "--config", cfg.c_str(), nullptr);
    ::_exit(127);
  }
  bool up = false;
  for (int i = 0; i < 750 && !up; ++i) {  // 15 s
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.2", &a.sin_addr);
    up = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(s);
    if (!up) ::usleep(20000);
  }
  ASSERT_TRUE(up) << "ringmaild did not start";
  OutboundSession::Params p;
  p.helo = "relay.example.test";
  p.port = static_cast<uint16_t>(port);
  auto client_tls = tls::TlsContext::client(tls::TlsContext::ClientMode::kOpportunistic);
  ASSERT_TRUE(client_tls) << client_tls.error();
  p.tls = *client_tls;
  auto m = message("T", {"bob@mx.test"});
  bool done = false;
  OutboundSession s(*b, *r, p, "mx.test", pull_from({&m}), count_results(), [&] { done = true; });
  s.start();
  for (int i = 0; i < 1500 && !(done && s.finished()); ++i) {
    b->wait(20);
    r->tick();
  }
  ::kill(pid, SIGTERM);
  int st;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(done && s.finished());
  EXPECT_EQ(m.results[0].outcome, proto::Outcome::kOk) << m.results[0].reply;
  EXPECT_TRUE(s.used_tls() && m.used_tls);
  EXPECT_FALSE(s.tls_verified() || m.tls_verified);  // opportunistic: not checked
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// The dispatcher: batches from several shards share the destination's
// connections within its limits.
class DispatcherTest : public OutboundTest {
 protected:
  std::unique_ptr<OutboundDispatcher> make(config::OutboundRoute route) {
    config::OutboundConfig cfg;
    cfg.port = static_cast<uint16_t>(port);
    cfg.connect_timeout_s = 3;
    cfg.command_timeout_s = 5;
    cfg.routes.push_back(route);
    OutboundDispatcher::Deps d;
    d.backend = b.get();
    d.resolver = r.get();
    d.helo = "relay.example.test";
    d.complete = [this](OutboundBatch* batch) { completed.push_back(batch); };
    return std::make_unique<OutboundDispatcher>(std::move(d), cfg);
  }
  // Runs the loop until `until` holds or 20 s pass; `each` after every turn.
  void run(
      OutboundDispatcher& d, const std::function<bool()>& until,
      const std::function<void()>& each = [] {}) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    auto next_tick = std::chrono::steady_clock::now();
    while (!until() && std::chrono::steady_clock::now() < end) {
      d.service();
      b->wait(10);
      r->tick();
      if (std::chrono::steady_clock::now() >= next_tick) {
        d.tick();
        next_tick += std::chrono::milliseconds(100);
      }
      each();
    }
  }
  OutboundBatch batch(uint32_t home, std::vector<OutboundMessage>& msgs) {
    OutboundBatch x;
    x.home = home;
    x.domain = "mx.test";
    for (auto& m : msgs) x.msgs.push_back(&m);
    return x;
  }
  std::vector<OutboundMessage> messages(const std::string& prefix, int n) {
    std::vector<OutboundMessage> v;
    for (int i = 0; i < n; ++i) v.push_back(message(prefix + std::to_string(i), {"u@mx.test"}));
    return v;
  }
  std::vector<OutboundBatch*> completed;
};

TEST_P(DispatcherTest, BatchesFromTwoShardsShareTheConnectionLimit) {
  Sink mx1("127.0.0.2", port, {});
  config::OutboundRoute route;
  route.domain = "mx.test";
  route.connections = 2;
  auto d = make(route);
  auto m0 = messages("A", 10), m1 = messages("B", 10);
  OutboundBatch b0 = batch(0, m0), b1 = batch(1, m1);
  d->submit(&b0);
  d->submit(&b1);
  size_t most = 0;
  run(
      *d, [&] { return completed.size() == 2; }, [&] { most = std::max(most, d->sessions()); });
  ASSERT_EQ(completed.size(), 2u);
  EXPECT_LE(most, 2u);
  // Everything was waiting when the sessions started: each connection
  // carried several messages.
  EXPECT_LE(d->sessions_started(), 2u);
  for (auto* v : {&m0, &m1}) {
    for (auto& m : *v) {
      EXPECT_EQ(m.results[0].outcome, proto::Outcome::kOk) << m.id << ": " << m.results[0].reply;
      EXPECT_EQ(m.remote_host, "mx1.mx.test");
    }
  }
  run(*d, [&] { return d->idle(); });
  EXPECT_TRUE(d->idle());
}

TEST_P(DispatcherTest, MessagesPerConnectionLimit) {
  Sink mx1("127.0.0.2", port, {});
  config::OutboundRoute route;
  route.domain = "mx.test";
  route.connections = 1;
  route.messages_per_connection = 3;
  auto d = make(route);
  auto m0 = messages("A", 7);
  OutboundBatch b0 = batch(0, m0);
  d->submit(&b0);
  run(*d, [&] { return completed.size() == 1; });
  ASSERT_EQ(completed.size(), 1u);
  EXPECT_EQ(d->sessions_started(), 3u);  // 3 + 3 + 1
  for (auto& m : m0) EXPECT_EQ(m.results[0].outcome, proto::Outcome::kOk) << m.results[0].reply;
}

TEST_P(DispatcherTest, RateLimitHoldsMessagesBack) {
  Sink mx1("127.0.0.2", port, {});
  config::OutboundRoute route;
  route.domain = "mx.test";
  route.messages_per_minute = 60;  // one a second, bursts of one
  auto d = make(route);
  auto m0 = messages("A", 4);
  OutboundBatch b0 = batch(0, m0);
  d->submit(&b0);
  auto done = [&] {
    size_t n = 0;
    for (auto& m : m0) n += m.results.empty() || m.results[0].reply.empty() ? 0 : 1;
    return n;
  };
  const auto t0 = std::chrono::steady_clock::now();
  run(*d, [&] { return std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(1500); });
  // An upper bound only (a slow machine delivers fewer): the first message
  // at once, one more per second.
  EXPECT_LE(done(), 2u);
  run(*d, [&] { return completed.size() == 1; });
  ASSERT_EQ(completed.size(), 1u);
  EXPECT_EQ(done(), 4u);
}

TEST_P(DispatcherTest, AnUnreachableDestinationFailsWhatWaitsWithOneAttempt) {
  config::OutboundRoute route;
  route.domain = "down.test";
  route.connections = 1;
  auto d = make(route);
  std::vector<OutboundMessage> m0;
  for (int i = 0; i < 5; ++i) m0.push_back(message("D" + std::to_string(i), {"u@down.test"}));
  OutboundBatch b0;
  b0.domain = "down.test";
  for (auto& m : m0) b0.msgs.push_back(&m);
  d->submit(&b0);
  run(*d, [&] { return completed.size() == 1; });
  ASSERT_EQ(completed.size(), 1u);
  EXPECT_EQ(d->sessions_started(), 1u);
  for (auto& m : m0) {
    EXPECT_EQ(m.results[0].outcome, proto::Outcome::kTemp);
    EXPECT_NE(m.results[0].reply.find("127.0.0.9"), std::string::npos) << m.results[0].reply;
  }
}

TEST_P(DispatcherTest, StopCompletesEverythingHeld) {
  config::OutboundRoute route;
  route.domain = "down.test";
  auto d = make(route);
  auto m0 = messages("S", 3);
  OutboundBatch b0 = batch(0, m0);
  d->submit(&b0);
  d->service();
  d->stop();
  run(*d, [&] { return completed.size() == 1 && d->idle(); });
  EXPECT_TRUE(d->idle());
  OutboundBatch late = batch(1, m0);
  d->submit(&late);  // after stop: completed at once
  EXPECT_EQ(completed.size(), 2u);
}

RINGMAIL_ON_BOTH_BACKENDS(OutboundTest);
RINGMAIL_ON_BOTH_BACKENDS(DispatcherTest);

}  // namespace
}  // namespace ringmail::engine
