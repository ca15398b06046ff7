#include "config/config.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>

namespace ringmail::config {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string err_of(const std::string& text) {
  auto c = parse_config(text, "t.toml");
  EXPECT_FALSE(c);
  return c ? std::string() : c.error();
}

// The configuration, or null and a test failure with the reason.
std::shared_ptr<const Config> parsed(const std::string& text, const std::string& source) {
  auto c = parse_config(text, source);
  if (!c) {
    ADD_FAILURE() << c.error();
    return nullptr;
  }
  return *c;
}

constexpr char kBase[] = R"(hostname = "mx.example.test"
data_dir = "/tmp/x"
local_domains = ["Example.TEST", "other.test"]
[[listener]]
address = "[::1]:2525"
)";

TEST(Config, DevConfigParses) {
  auto c = parsed(kDevConfig, "dev");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->hostname, "localhost.example.test");
  ASSERT_EQ(c->listeners.size(), 6u);
  EXPECT_EQ(c->listeners[3].kind, proto::ListenerKind::kSubmission);
  EXPECT_FALSE(c->listeners[3].implicit_tls);
  EXPECT_EQ(c->listeners[4].address, "127.0.0.1:2465");
  EXPECT_TRUE(c->listeners[4].implicit_tls);
  EXPECT_TRUE(c->tls_self_signed);
  EXPECT_TRUE(c->tls_cert_dirs.empty());
  EXPECT_TRUE(c->local_domains.count("example.test"));
  EXPECT_EQ(c->threads, shards_for_cpus(usable_cpus()));  // no threads: the default
}

TEST(Config, DefaultShardsLeaveSmallMachinesOneShard) {
  EXPECT_EQ(shards_for_cpus(1), 1u);
  EXPECT_EQ(shards_for_cpus(2), 1u);
  EXPECT_EQ(shards_for_cpus(3), 3u);
  EXPECT_EQ(shards_for_cpus(16), 16u);
  EXPECT_GE(usable_cpus(), 1u);
}

TEST(Config, OutboundTable) {
  auto c = parsed(std::string(kBase) +
                      "[outbound]\ndns_servers = \"127.0.0.1:5353\"\nport = 2526\n"
                      "retry_first_s = 60\nstarttls = false\n",
                  "t.toml");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->dns_servers, "127.0.0.1:5353");
  EXPECT_EQ(c->outbound.port, 2526);
  EXPECT_EQ(c->outbound.retry_first_s, 60u);
  EXPECT_EQ(c->outbound.retry_max_s, 3600u);  // default
  EXPECT_FALSE(c->outbound.starttls);
  EXPECT_EQ(err_of(std::string(kBase) + "[outbound]\nport = 0\n"),
            "t.toml:7: outbound.port: must be between 1 and 65535");
  EXPECT_EQ(err_of(std::string(kBase) + "[outbound]\nretries = 3\n"),
            "t.toml:7: outbound.retries: unknown key");
}

TEST(Config, OutboundRoutesAndLimits) {
  auto c = parsed(std::string(kBase) + R"([outbound]
messages_per_minute = 600
delay_warning_s = 14400
source_v4 = "127.0.0.9"
source_v6 = "::1"
[[outbound.route]]
domain = "*"
next_hop = "smtp.provider.test:587"
tls = "verify"
auth_user = "me@example.test"
auth_password = "pw"
[[outbound.route]]
domain = "Gmail.COM"
connections = 3
messages_per_connection = 20
messages_per_minute = 120
[[outbound.route]]
domain = "lab.test"
next_hop = "[2001:db8::1]:2525"
tls = "none"
)",
                  "t.toml");
  ASSERT_NE(c, nullptr);
  const OutboundConfig& o = c->outbound;
  EXPECT_EQ(o.messages_per_minute, 600u);
  EXPECT_EQ(o.delay_warning_s, 14400u);
  EXPECT_EQ(o.source_v4, "127.0.0.9");
  ASSERT_EQ(o.routes.size(), 3u);
  const OutboundRoute* star = o.route_for("example.net");
  ASSERT_NE(star, nullptr);
  EXPECT_EQ(star->host, "smtp.provider.test");
  EXPECT_EQ(star->port, 587);
  EXPECT_EQ(star->tls, OutboundRoute::Tls::kVerify);
  EXPECT_EQ(star->auth_password, "pw");
  const OutboundRoute* g = o.route_for("gmail.com");
  ASSERT_NE(g, nullptr);
  EXPECT_TRUE(g->host.empty());  // limits only: MX delivery
  EXPECT_EQ(o.connections_for(g), 3u);
  EXPECT_EQ(o.messages_per_connection_for(g), 20u);
  EXPECT_EQ(o.rate_for(g), 120u);
  EXPECT_EQ(o.connections_for(star), 10u);  // the global default
  EXPECT_EQ(o.rate_for(star), 600u);
  const OutboundRoute* lab = o.route_for("lab.test");
  EXPECT_EQ(lab->host, "2001:db8::1");
  EXPECT_EQ(lab->port, 2525);
  EXPECT_EQ(lab->tls, OutboundRoute::Tls::kNone);
  // Without a "*" route other domains have none.
  c = parsed(std::string(kBase) + "[[outbound.route]]\ndomain = \"a.test\"\nconnections = 1\n",
             "t.toml");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->outbound.route_for("b.test"), nullptr);

  const std::string r = std::string(kBase) + "[[outbound.route]]\n";
  EXPECT_EQ(err_of(r + "domain = \"*\"\nnext_hop = \"a b:25\"\n"),
            "t.toml:8: outbound.route.next_hop: 'a b:25' is not HOST, HOST:PORT or [ADDRESS]:PORT");
  EXPECT_EQ(err_of(r + "domain = \"*\"\nnext_hop = \"relay.test:70000\"\n"),
            "t.toml:8: outbound.route.next_hop: 'relay.test:70000' is not HOST, HOST:PORT or "
            "[ADDRESS]:PORT");
  EXPECT_EQ(err_of(r + "domain = \"*\"\ntls = \"maybe\"\n"),
            "t.toml:8: outbound.route.tls: must be opportunistic, none, required or verify");
  EXPECT_EQ(err_of(r + "next_hop = \"relay.test\"\n"),
            "t.toml:6: outbound.route.domain: is required");
  EXPECT_THAT(err_of(r + "domain = \"*\"\nauth_user = \"u\"\n"),
              HasSubstr("auth_user needs a password"));
  EXPECT_THAT(
      err_of(r + "domain = \"*\"\nauth_user = \"u\"\nauth_password = \"p\"\ntls = \"none\"\n"),
      HasSubstr("AUTH is only used over TLS"));
  EXPECT_THAT(
      err_of(r + "domain = \"*\"\nauth_user = \"u\"\nauth_password_file = \"/nonexistent/pw\"\n"),
      HasSubstr("cannot read a password from /nonexistent/pw"));
  EXPECT_EQ(err_of(r + "domain = \"*\"\nweight = 3\n"),
            "t.toml:8: outbound.route.weight: unknown key");
  EXPECT_EQ(err_of(std::string(kBase) + "[outbound]\nsource_v4 = \"::1\"\n"),
            "t.toml:7: outbound.source_v4: not an IPv4 address");
}

TEST(Config, RelayNetworks) {
  auto c = parsed(
      "relay_networks = [\"127.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\"]\n" + std::string(kBase),
      "t.toml");
  ASSERT_NE(c, nullptr);
  auto v4 = [](const char* ip) {
    sockaddr_storage ss{};
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a->sin_addr);
    return ss;
  };
  auto v6 = [](const char* ip) {
    sockaddr_storage ss{};
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &a->sin6_addr);
    return ss;
  };
  EXPECT_TRUE(in_networks(c->relay_networks, v4("127.9.9.9")));
  EXPECT_TRUE(in_networks(c->relay_networks, v4("192.0.2.7")));
  EXPECT_FALSE(in_networks(c->relay_networks, v4("192.0.2.8")));
  EXPECT_TRUE(in_networks(c->relay_networks, v6("::ffff:127.0.0.1")));  // v4-mapped
  EXPECT_TRUE(in_networks(c->relay_networks, v6("2001:db8:1::5")));
  EXPECT_FALSE(in_networks(c->relay_networks, v6("::1")));
  EXPECT_THAT(err_of("relay_networks = [\"10.0.0.0/33\"]\n" + std::string(kBase)),
              HasSubstr("t.toml:1: relay_networks: not an address range"));
  EXPECT_THAT(err_of("relay_networks = [\"example.com\"]\n" + std::string(kBase)),
              HasSubstr("relay_networks: not an address range"));
}

TEST(Config, TlsTable) {
  auto c =
      parsed(std::string(kBase) + "[tls]\ncert_dirs = [\"/etc/letsencrypt\", \"/c\"]\n", "t.toml");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->tls_cert_dirs, (std::vector<std::string>{"/etc/letsencrypt", "/c"}));
  EXPECT_FALSE(c->tls_self_signed);
  EXPECT_EQ(err_of(std::string(kBase) + "[tls]\ncert_dirs = \"/x\"\n"),
            "t.toml:7: tls.cert_dirs: must be an array");
  EXPECT_EQ(err_of(std::string(kBase) + "[tls]\ncerts = []\n"), "t.toml:7: tls.certs: unknown key");
  EXPECT_EQ(err_of(std::string(kBase) + "[tls]\nself_signed = 1\n"),
            "t.toml:7: tls.self_signed: must be true or false");
}

TEST(Config, LimitsAndDomains) {
  auto c = parsed(std::string(kBase) +
                      "[limits]\nmessage_bytes_max = 2048\nrcpt_count_max = 7\n"
                      "command_timeout_s = 5\ndelivery_defer_ms = 0\n",
                  "t.toml");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->limits.message_bytes_max, 2048u);
  EXPECT_EQ(c->limits.rcpt_count_max, 7u);
  EXPECT_EQ(c->command_timeout_s, 5u);
  EXPECT_EQ(c->delivery_defer_ms, 0u);
  EXPECT_EQ(c->primary_domain, "example.test");
  EXPECT_TRUE(c->local_domains.count("other.test"));
  EXPECT_EQ(c->listeners[0].addr.ss_family, AF_INET6);
}

TEST(Config, ErrorsNameFileLineAndKey) {
  EXPECT_EQ(err_of("colour = 1\n" + std::string(kBase)), "t.toml:1: colour: unknown key");
  EXPECT_EQ(err_of(std::string(kBase) + "port = 1\n"), "t.toml:6: listener.port: unknown key");
  EXPECT_EQ(err_of(std::string(kBase) + "[limits]\nrcpt_count_max = 0\n"),
            "t.toml:7: limits.rcpt_count_max: must be between 1 and 100000");
  EXPECT_EQ(err_of(std::string(kBase) + "[limits]\ndelivery_defer_ms = 60001\n"),
            "t.toml:7: limits.delivery_defer_ms: must be between 0 and 60000");
  EXPECT_THAT(err_of(std::string(kBase) + "[limits]\nrcpt_count_max = \"x\"\n"),
              HasSubstr("t.toml:7: limits.rcpt_count_max: must be an integer"));
  EXPECT_THAT(err_of("hostname = \"mx\"\ndata_dir=\"/x\"\nlocal_domains=[\"a.test\"]\n"
                     "[[listener]]\naddress = \"nowhere\"\n"),
              HasSubstr("t.toml:4: listener.address"));
  EXPECT_THAT(err_of("hostname = \n"), HasSubstr("t.toml:1:"));
  EXPECT_THAT(err_of("backend = \"kqueue\"\n" + std::string(kBase)),
              HasSubstr("backend: must be auto, io_uring or epoll"));
}

TEST(Config, HttpListener) {
  auto c =
      parsed(std::string(kBase) + "[[listener]]\naddress = \"127.0.0.1:2580\"\nkind = \"http\"\n",
             "t.toml");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->listeners.size(), 2u);
  EXPECT_FALSE(c->listeners[0].http);
  EXPECT_TRUE(c->listeners[1].http);
  EXPECT_THAT(err_of(std::string(kBase) + "kind = \"gopher\"\n"),
              HasSubstr("listener.kind: must be smtp, submission, submissions or http"));
}

TEST(Config, ListenAddresses) {
  sockaddr_storage ss;
  socklen_t len;
  EXPECT_TRUE(parse_listen_address("127.0.0.1:25", ss, len));
  EXPECT_TRUE(parse_listen_address("[::]:587", ss, len));
  EXPECT_FALSE(parse_listen_address("127.0.0.1", ss, len));
  EXPECT_FALSE(parse_listen_address("127.0.0.1:0", ss, len));
  EXPECT_FALSE(parse_listen_address("127.0.0.1:70000", ss, len));
  EXPECT_FALSE(parse_listen_address("::1:25", ss, len));
}

}  // namespace
}  // namespace ringmail::config

namespace ringmail::config {
namespace {

// Regression (issue 19, defect 4): the same listener twice in one file bound
// twice (SO_REUSEPORT) and split the connections; a configuration error now.
TEST(Config, DuplicateListenerIsAnError) {
  const std::string base =
      "hostname = \"mx.test\"\ndata_dir = \"/x\"\nlocal_domains = [\"a.test\"]\n";
  const auto listener = [](const char* a) {
    return std::string("[[listener]]\naddress = \"") + a + "\"\n";
  };
  EXPECT_EQ(err_of(base + listener("127.0.0.1:25") + listener("127.0.0.1:25")),
            "t.toml:7: listener.address: '127.0.0.1:25' overlaps the listener '127.0.0.1:25' (the "
            "same port)");
  EXPECT_THAT(err_of(base + listener("0.0.0.0:25") + listener("192.0.2.1:25")),
              HasSubstr("'192.0.2.1:25' overlaps the listener '0.0.0.0:25'"));
  EXPECT_THAT(err_of(base + listener("[::1]:587") + listener("[::]:587")),
              HasSubstr("'[::]:587' overlaps the listener '[::1]:587'"));
  // Other ports, other addresses, or other families: fine.
  EXPECT_NE(parsed(base + listener("127.0.0.1:25") + listener("127.0.0.2:25") +
                       listener("127.0.0.1:587") + listener("[::]:25") + listener("0.0.0.0:465"),
                   "t.toml"),
            nullptr);
}

}  // namespace
}  // namespace ringmail::config

namespace ringmail::config {
namespace {

// config-show prints what the daemon runs with; read back, it must give
// the same configuration (so nothing is left out or spelled differently).
void expect_round_trip(const std::string& text) {
  auto a = parsed(text, "a.toml");
  ASSERT_NE(a, nullptr);
  const std::string shown = to_toml(*a);
  auto b = parsed(shown, "b.toml");
  ASSERT_NE(b, nullptr) << shown;
  EXPECT_EQ(to_toml(*b).substr(shown.find('\n')), shown.substr(shown.find('\n')));
}

TEST(ConfigShow, EmbeddedDevConfigurationRoundTrips) { expect_round_trip(kDevConfig); }

TEST(ConfigShow, EverySectionRoundTrips) {
  expect_round_trip(R"(hostname = "mx.example.org"
data_dir = "/var/spool/ringmail"
domains_dir = "/etc/ringmail/domains"
local_domains = ["b.example", "a.example", "c.example"]
threads = 3
backend = "epoll"
maildir_sync = "fsync"
relay_networks = ["192.0.2.0/24", "2001:db8::/32", "127.0.0.1"]
[[listener]]
address = "0.0.0.0:25"
[[listener]]
address = "[::]:587"
kind = "submission"
[[listener]]
address = "127.0.0.1:465"
kind = "submissions"
[[listener]]
address = "127.0.0.1:9100"
kind = "http"
[tls]
cert_dirs = ["/etc/letsencrypt/live"]
[auth]
sender_policy = "domain"
failures_max = 7
[aliases]
suffix_separators = "+-"
drop_characters = ""
[inbound]
spf_fail = "mark"
greeting_delay_s = 3
[srs]
enabled = false
domain = "fwd.example"
[dkim]
sha256_backend = "wolfcrypt"
[limits]
message_bytes_max = 1048576
junk_commands_max = 0
spool_segment_bytes = 65536
[outbound]
dns_servers = "127.0.0.1:53"
retry_first_s = 60
starttls = false
source_v6 = "2001:db8::1"
[[outbound.route]]
domain = "*"
next_hop = "[2001:db8::25]:2525"
tls = "verify"
connections = 2
[[outbound.route]]
domain = "slow.example"
next_hop = "relay.example"
messages_per_minute = 10
)");
}

TEST(ConfigShow, DefaultsAreFilledInAndPasswordsLeftOut) {
  auto c = parsed(R"(hostname = "mx.example.org"
data_dir = "/d"
local_domains = ["a.example"]
[[listener]]
address = "127.0.0.1:25"
[[outbound.route]]
domain = "*"
next_hop = "smtp.provider.example:587"
tls = "verify"
auth_user = "me"
auth_password = "s3cret-pw"
)",
                  "t.toml");
  ASSERT_NE(c, nullptr);
  const std::string shown = to_toml(*c);
  EXPECT_THAT(shown, HasSubstr("\nmessage_bytes_max = 36700160\n"));
  EXPECT_THAT(shown, HasSubstr("\nexpire_s = 432000\n"));
  EXPECT_THAT(shown, HasSubstr("\ndomains_dir = \"/etc/ringmail/domains\"\n"));
  EXPECT_THAT(shown, HasSubstr("auth_user = \"me\"\n# auth_password is set (not shown)\n"));
  EXPECT_THAT(shown, Not(HasSubstr("s3cret")));
}

}  // namespace
}  // namespace ringmail::config

namespace ringmail::config {
namespace {

constexpr char kHashA[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

TEST(ApiTokens, ParsedWithScopesAndSenderDomains) {
  auto c = parsed(std::string(kBase) + R"([[api.token]]
name = "ops"
sha256 = ")" + std::string(kHashA) +
                      R"("
scopes = ["admin"]
[[api.token]]
name = "billing-app"
sha256 = "2cf24dba5fD0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
scopes = ["inject", "admin"]
sender_domains = ["Example.TEST"]
)",
                  "t.toml");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->api_tokens.size(), 2u);
  EXPECT_EQ(c->api_tokens[0].name, "ops");
  EXPECT_TRUE(c->api_tokens[0].has(ApiToken::kAdmin));
  EXPECT_FALSE(c->api_tokens[0].has(ApiToken::kInject));
  EXPECT_TRUE(c->api_tokens[1].has(ApiToken::kInject));
  EXPECT_EQ(c->api_tokens[1].sha256[10], 'd');  // kept in lower case
  EXPECT_EQ(c->api_tokens[1].sender_domains, std::vector<std::string>{"example.test"});
  expect_round_trip(std::string(kBase) + "[[api.token]]\nname = \"ops\"\nsha256 = \"" + kHashA +
                    "\"\nscopes = [\"admin\", \"inject\"]\nsender_domains = [\"a.test\"]\n" +
                    "recipients_per_second = 500\n");
}

TEST(Inject, LimitsParsedWithDefaultsAndRanges) {
  auto d = parsed(kBase, "t.toml");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->inject_body_bytes_max, 25u << 20);
  EXPECT_EQ(d->inject_spool_high_water_bytes, uint64_t{4} << 30);
  EXPECT_EQ(d->inject_request_messages_bytes_max, 256u << 20);
  auto c = parsed(
      std::string(kBase) + "[inject]\nbody_bytes_max = 2048\nspool_high_water_bytes = 1048576\n",
      "t.toml");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->inject_body_bytes_max, 2048u);
  EXPECT_EQ(c->inject_spool_high_water_bytes, 1048576u);
  expect_round_trip(std::string(kBase) + "[inject]\nbody_bytes_max = 4096\n");
  EXPECT_THAT(err_of(std::string(kBase) + "[inject]\nbody_bytes_max = 10\n"),
              HasSubstr("inject.body_bytes_max: must be between 1024 and"));
  EXPECT_THAT(err_of(std::string(kBase) + "[inject]\nspool_max = 10\n"),
              HasSubstr("inject.spool_max: unknown key"));
}

TEST(ApiTokens, BadTablesAreRefusedWithTheReason) {
  const std::string head = std::string(kBase) + "[[api.token]]\n";
  const std::string hash = std::string("sha256 = \"") + kHashA + "\"\n";
  EXPECT_THAT(err_of(head + hash + "scopes = [\"admin\"]\n"),
              HasSubstr("api.token.name: is required"));
  EXPECT_THAT(err_of(head + "name = \"x\"\nsha256 = \"secret\"\nscopes = [\"admin\"]\n"),
              HasSubstr("ringmail token-hash TOKEN"));
  EXPECT_THAT(err_of(head + "name = \"x\"\n" + hash + "scopes = [\"root\"]\n"),
              HasSubstr("\"root\" is not a scope (admin, inject)"));
  EXPECT_THAT(err_of(head + "name = \"x\"\n" + hash), HasSubstr("at least one of admin, inject"));
  EXPECT_THAT(err_of(head + "name = \"x\"\n" + hash +
                     "scopes = [\"admin\"]\nsender_domains = [\"a.test\"]\n"),
              HasSubstr("only for a token with the inject scope"));
  EXPECT_THAT(err_of(head + "name = \"x\"\n" + hash +
                     "scopes = [\"inject\"]\nsender_domains = [\"not a domain\"]\n"),
              HasSubstr("is not a domain"));
  EXPECT_THAT(
      err_of(head + "name = \"x\"\n" + hash + "scopes = [\"admin\"]\nrecipients_per_second = 5\n"),
      HasSubstr("recipients_per_second: only for a token with the inject scope"));
  EXPECT_THAT(err_of(head + "name = \"x\"\n" + hash + "scopes = [\"admin\"]\ntoken = \"t\"\n"),
              HasSubstr("api.token.token: unknown key"));
  const std::string one = "name = \"x\"\n" + hash + "scopes = [\"admin\"]\n";
  EXPECT_THAT(err_of(head + one + "[[api.token]]\n" + one), HasSubstr("\"x\" is used twice"));
  EXPECT_THAT(
      err_of(head + one + "[[api.token]]\nname = \"y\"\n" + hash + "scopes = [\"admin\"]\n"),
      HasSubstr("the same as \"x\"'s"));
  EXPECT_THAT(err_of(std::string(kBase) + "[api]\ntoken = \"t\"\n"),
              HasSubstr("use [[api.token]] tables"));
}

}  // namespace
}  // namespace ringmail::config

namespace ringmail::config {
namespace {

TEST(AdminSocket, ParsedAndCheckedForLength) {
  auto c =
      parsed(std::string(kBase) + "[admin]\nsocket = \"/run/ringmail/admin.sock\"\n", "t.toml");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->admin_socket, "/run/ringmail/admin.sock");
  auto none = parsed(kBase, "t.toml");
  ASSERT_NE(none, nullptr);
  EXPECT_EQ(none->admin_socket, "");
  EXPECT_THAT(err_of(std::string(kBase) + "[admin]\nsocket = \"/" + std::string(120, 'x') + "\"\n"),
              HasSubstr("admin.socket: longer than a UNIX socket path can be"));
  EXPECT_THAT(err_of(std::string(kBase) + "[admin]\npath = \"/x\"\n"),
              HasSubstr("admin.path: unknown key"));
  expect_round_trip(std::string(kBase) + "[admin]\nsocket = \"/run/ringmail/admin.sock\"\n");
}

TEST(Config, EventsTable) {
  auto c = parsed(kBase, "t.toml");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->events_enabled);
  EXPECT_EQ(events_dir(*c), "/tmp/x/events");
  EXPECT_EQ(c->events_sync_interval_ms, 10u);
  ASSERT_TRUE(c->bounce_classifier);  // the built-in rules
  EXPECT_EQ(c->bounce_classifier->classify(550, "5.1.1", "user unknown"),
            proto::BounceClass::InvalidRecipient);

  const std::string rules = ::testing::TempDir() + "/rules.toml";
  {
    std::FILE* f = std::fopen(rules.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("[[rule]]\nclass = \"SpamBlock\"\npatterns = ['user unknown']\n", f);
    std::fclose(f);
  }
  c = parsed(std::string(kBase) +
                 "[events]\nenabled = false\ndir = \"/var/ev\"\n"
                 "sync_interval_ms = 0\nbounce_rules = \"" +
                 rules + "\"\n",
             "t.toml");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->events_enabled);
  EXPECT_EQ(events_dir(*c), "/var/ev");
  EXPECT_EQ(c->events_sync_interval_ms, 0u);
  EXPECT_EQ(c->bounce_classifier->classify(550, "5.1.1", "user unknown"),
            proto::BounceClass::SpamBlock);

  EXPECT_THAT(err_of(std::string(kBase) + "[events]\nbounce_rules = \"/nonexistent/r.toml\"\n"),
              HasSubstr("events.bounce_rules: cannot read /nonexistent/r.toml"));
  {
    std::FILE* f = std::fopen(rules.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("[[rule]]\nclass = \"Bogus\"\npatterns = ['x']\n", f);
    std::fclose(f);
  }
  EXPECT_THAT(err_of(std::string(kBase) + "[events]\nbounce_rules = \"" + rules + "\"\n"),
              HasSubstr("Bogus"));
  EXPECT_THAT(err_of(std::string(kBase) + "[events]\nsync_interval_ms = 20000\n"),
              HasSubstr("events.sync_interval_ms"));
  EXPECT_THAT(err_of(std::string(kBase) + "[events]\nspeed = 1\n"), HasSubstr("unknown key"));
  c = parsed(std::string(kBase) + "[events]\nmetadata_headers = [\"X-Campaign\"]\n", "t.toml");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->events_metadata_headers, std::vector<std::string>{"X-Campaign"});
  EXPECT_THAT(err_of(std::string(kBase) + "[events]\nmetadata_headers = [\"X Campaign\"]\n"),
              HasSubstr("must hold header field names"));
  EXPECT_FALSE(parsed(kBase, "t.toml")->events_verp);
  c = parsed(std::string(kBase) + "[events]\nverp = true\n", "t.toml");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->events_verp);
  EXPECT_EQ(verp_domain(*c), c->primary_domain);
  c = parsed(std::string(kBase) + "[events]\nverp = true\nverp_domain = \"Bounces.Example\"\n",
             "t.toml");
  ASSERT_TRUE(c);
  EXPECT_EQ(verp_domain(*c), "bounces.example");
  EXPECT_THAT(err_of(std::string(kBase) + "[events]\nverp = 1\n"),
              HasSubstr("events.verp: must be true or false"));
  EXPECT_THAT(err_of(std::string(kBase) + "[events]\nverp_domain = \"a..b\"\n"),
              HasSubstr("is not a domain"));
}

TEST(Config, UnsubscribeRules) {
  const std::string token = "[[api.token]]\nname = \"app\"\nsha256 = \"" + std::string(64, 'a') +
                            "\"\nscopes = [\"inject\"]\n";
  auto c = parsed(std::string(kBase) + token +
                      "[[unsubscribe]]\ntoken = \"app\"\nurl = \"https://m.example/u/\"\n"
                      "mailto = \"Unsub@Example.COM\"\n"
                      "[[unsubscribe]]\nsender_domain = \"News.Example\"\n"
                      "url = \"http://m.example/u/\"\nstream = \"weekly\"\n",
                  "t.toml");
  ASSERT_TRUE(c);
  ASSERT_EQ(c->unsubscribe.size(), 2u);
  EXPECT_EQ(c->unsubscribe[0].token, "app");
  EXPECT_EQ(c->unsubscribe[0].stream, "app");
  EXPECT_EQ(c->unsubscribe[0].mailto, "unsub@example.com");
  EXPECT_EQ(c->unsubscribe[1].sender_domain, "news.example");
  EXPECT_EQ(c->unsubscribe[1].stream, "weekly");
  EXPECT_THAT(to_toml(*c), HasSubstr("[[unsubscribe]]\nsender_domain = \"news.example\"\n"
                                     "url = \"http://m.example/u/\"\nmailto = \"\"\n"
                                     "stream = \"weekly\"\n"));

  const std::string url = "url = \"https://m.example/u/\"\n";
  EXPECT_THAT(err_of(std::string(kBase) + "[[unsubscribe]]\n" + url),
              HasSubstr("needs one of token"));
  EXPECT_THAT(err_of(std::string(kBase) + token +
                     "[[unsubscribe]]\ntoken = \"app\"\nsender_domain = \"a.example\"\n" + url),
              HasSubstr("needs one of token"));
  EXPECT_THAT(err_of(std::string(kBase) + "[[unsubscribe]]\ntoken = \"nope\"\n" + url),
              HasSubstr("\"nope\" is not the name of an [[api.token]] with the inject scope"));
  EXPECT_THAT(err_of(std::string(kBase) + "[[unsubscribe]]\nsender_domain = \"a.example\"\n"),
              HasSubstr("unsubscribe.url: is required"));
  EXPECT_THAT(err_of(std::string(kBase) +
                     "[[unsubscribe]]\nsender_domain = \"a.example\"\nurl = \"ftp://x/\"\n"),
              HasSubstr("unsubscribe.url"));
  EXPECT_THAT(err_of(std::string(kBase) + "[[unsubscribe]]\nsender_domain = \"a.example\"\n" + url +
                     "mailto = \"u+x@a.example\"\n"),
              HasSubstr("is not an address"));
  EXPECT_THAT(err_of(std::string(kBase) + "[[unsubscribe]]\nsender_domain = \"a..b\"\n" + url),
              HasSubstr("is not a domain"));
  EXPECT_THAT(err_of(std::string(kBase) + "[unsubscribe]\nurl = \"x\"\n"),
              HasSubstr("use [[unsubscribe]] tables"));
}

TEST(Config, EventsWebhooks) {
  auto c = parsed(std::string(kBase) +
                      "[[events.webhook]]\nname = \"crm\"\nurl = \"https://hooks.example/ev\"\n"
                      "secret = \"k\"\n"
                      "[[events.webhook]]\nname = \"bounces_2\"\nurl = \"http://127.0.0.1:8080/\"\n"
                      "types = [\"Bounce\", \"Feedback\"]\nbatch_size = 10\ntimeout_s = 3\n"
                      "secret = \"s\"\nmax_backoff_s = 60\n",
                  "t.toml");
  ASSERT_TRUE(c);
  ASSERT_EQ(c->events_webhooks.size(), 2u);
  const WebhookConfig& a = c->events_webhooks[0];
  EXPECT_EQ(a.name, "crm");
  EXPECT_TRUE(a.types.empty());
  EXPECT_EQ(a.batch_size, 100u);
  EXPECT_EQ(a.timeout_s, 10u);
  EXPECT_EQ(a.max_backoff_s, 300u);
  EXPECT_EQ(a.secret, "k");
  const WebhookConfig& b = c->events_webhooks[1];
  EXPECT_EQ(b.types, (std::vector<std::string>{"Bounce", "Feedback"}));
  EXPECT_EQ(b.batch_size, 10u);
  EXPECT_EQ(b.timeout_s, 3u);
  EXPECT_EQ(b.max_backoff_s, 60u);
  const std::string shown = to_toml(*c);
  EXPECT_THAT(shown, HasSubstr("[[events.webhook]]\nname = \"bounces_2\"\n"));
  EXPECT_THAT(shown, HasSubstr("# secret is set (not shown)"));
  EXPECT_THAT(shown, Not(HasSubstr("\"k\"")));

  const std::string secret = ::testing::TempDir() + "/hook.secret";
  {
    std::FILE* f = std::fopen(secret.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("from-a-file\n", f);
    std::fclose(f);
  }
  c = parsed(std::string(kBase) + "[[events.webhook]]\nname = \"a\"\nurl = \"http://h/\"\n" +
                 "secret_file = \"" + secret + "\"\n",
             "t.toml");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->events_webhooks[0].secret, "from-a-file");
  EXPECT_THAT(to_toml(*c), HasSubstr("secret_file = \"" + secret + "\""));
}

TEST(Config, EventsAmqp) {
  auto c = parsed(std::string(kBase) + "[events.amqp]\nurl = \"amqp://u:pw@127.0.0.1:5672/%2f\"\n",
                  "t.toml");
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->events_amqp);
  EXPECT_EQ(c->events_amqp->exchange, "");
  EXPECT_EQ(c->events_amqp->routing_key, "ringmail.events");
  EXPECT_TRUE(c->events_amqp->types.empty());
  EXPECT_EQ(c->events_amqp->batch_size, 100u);
  EXPECT_EQ(c->events_amqp->timeout_s, 10u);
  EXPECT_EQ(c->events_amqp->max_backoff_s, 300u);
  const std::string shown = to_toml(*c);
  EXPECT_THAT(shown, HasSubstr("[events.amqp]\nurl = \"amqp://u:***@127.0.0.1:5672/%2f\"\n"));
  EXPECT_THAT(shown, Not(HasSubstr("pw")));
  EXPECT_FALSE(parsed(std::string(kBase), "t.toml")->events_amqp);

  const auto err = [&](const std::string& body) {
    const std::string e = err_of(std::string(kBase) + "[events.amqp]\n" + body);
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    return e;
  };
  EXPECT_EQ(err("exchange = \"x\"\n"), "t.toml:6: events.amqp.url: is required");
  EXPECT_THAT(err("url = \"http://h/\"\n"),
              HasSubstr("events.amqp.url: not an amqp://user:password@host:port/vhost URL"));
  EXPECT_THAT(err("url = \"amqp://h\"\ntypes = [\"Delivered\"]\n"),
              HasSubstr("events.amqp.types: \"Delivered\" is not an event type"));
  EXPECT_THAT(err("url = \"amqp://h\"\nbatch_size = 0\n"),
              HasSubstr("events.amqp.batch_size: must be between 1 and 10000"));
  EXPECT_THAT(err("url = \"amqp://h\"\nqueue = \"q\"\n"),
              HasSubstr("events.amqp.queue: unknown key"));
}

TEST(Config, BadWebhooksAreRefusedWithOneLine) {
  const std::string hook = std::string(kBase) + "[[events.webhook]]\n";
  const auto err = [&](const std::string& body) {
    const std::string e = err_of(hook + body);
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    return e;
  };
  EXPECT_EQ(err("url = \"http://h/\"\nsecret = \"k\"\n"),
            "t.toml:6: events.webhook.name: is required");
  EXPECT_THAT(err("name = \"Big Name\"\nurl = \"http://h/\"\nsecret = \"k\"\n"),
              HasSubstr("events.webhook.name: \"Big Name\" must be 1 to 64 of a-z, 0-9, _ and -"));
  EXPECT_EQ(err("name = \"a\"\nsecret = \"k\"\n"), "t.toml:6: events.webhook.url: is required");
  EXPECT_EQ(err("name = \"a\"\nurl = \"ftp://h/\"\nsecret = \"k\"\n"),
            "t.toml:8: events.webhook.url: \"ftp://h/\" is not an http:// or https:// URL");
  EXPECT_THAT(err("name = \"a\"\nurl = \"https://\"\nsecret = \"k\"\n"),
              HasSubstr("is not an http:// or https:// URL"));
  EXPECT_EQ(err("name = \"a\"\nurl = \"http://h/\"\n"),
            "t.toml:6: events.webhook.secret: is required (or secret_file): the HMAC-SHA256 key");
  EXPECT_THAT(err("name = \"a\"\nurl = \"http://h/\"\nsecret = \"\"\n"),
              HasSubstr("events.webhook.secret: is required"));
  EXPECT_THAT(err("name = \"a\"\nurl = \"http://h/\"\nsecret = 12\n"),
              HasSubstr("secret: must be a string"));
  EXPECT_THAT(err("name = \"a\"\nurl = \"http://h/\"\nsecret_file = \"/nonexistent/s\"\n"),
              HasSubstr("events.webhook.secret_file: cannot read a secret from /nonexistent/s"));
  EXPECT_THAT(err("name = \"a\"\nurl = \"http://h/\"\nsecret = \"k\"\nsecret_file = \"/x\"\n"),
              HasSubstr("give secret or secret_file, not both"));
  EXPECT_THAT(err("name = \"a\"\nurl = \"http://h/\"\nsecret = \"k\"\ntypes = [\"Delivered\"]\n"),
              HasSubstr("events.webhook.types: \"Delivered\" is not an event type"));
  EXPECT_THAT(err("name = \"a\"\nurl = \"http://h/\"\nsecret = \"k\"\nbatch_size = 0\n"),
              HasSubstr("events.webhook.batch_size: must be between 1 and 10000"));
  EXPECT_THAT(err("name = \"a\"\nurl = \"http://h/\"\nsecret = \"k\"\nsecert = \"k\"\n"),
              HasSubstr("events.webhook.secert: unknown key"));
  EXPECT_THAT(err("name = \"a\"\nurl = \"http://h/\"\nsecret = \"k\"\n"
                  "[[events.webhook]]\nname = \"a\"\nurl = \"http://i/\"\nsecret = \"k\"\n"),
              HasSubstr("events.webhook.name: \"a\" is used twice"));
  EXPECT_THAT(err_of(std::string(kBase) + "[events]\nenabled = false\n" +
                     "[[events.webhook]]\nname = \"a\"\nurl = \"http://h/\"\nsecret = \"k\"\n"),
              HasSubstr("events.webhook: needs the event log"));
}

}  // namespace
}  // namespace ringmail::config
