// The recipient policy's SRS, with time driven by a ManualClock: an address
// it made is taken back while young and refused once older than
// max_age_days.
#include "engine/recipient_policy.h"

#include <gtest/gtest.h>

#include "engine/clock.h"
#include "tls/hmac.h"

namespace ringmail::engine {
namespace {

proto::Address address(const std::string& a) {
  proto::Address out;
  out.local = a.substr(0, a.rfind('@'));
  out.domain = a.substr(a.rfind('@') + 1);
  return out;
}

TEST(RecipientPolicy, SrsAddressesAgeWithTheClock) {
  auto cfg = std::make_shared<config::Config>();
  cfg->local_domains = {"example.test"};
  cfg->primary_domain = "example.test";
  auto srs = std::make_shared<proto::srs::Config>();
  srs->domain = "example.test";
  srs->secrets = {"tops3cr3t"};
  srs->max_age_days = 21;
  srs->hmac = tls::hmac_sha1;
  ManualClock clock;
  RecipientPolicy policy(cfg, clock);
  policy.set_srs(srs);

  // Mail forwarded for a sender of another domain goes out with our SRS address.
  const proto::Address sent = policy.outbound_sender(address("alice@other.example"));
  ASSERT_EQ(sent.domain, "example.test") << sent.to_string();
  ASSERT_NE(sent.local.find("other.example"), std::string::npos) << sent.to_string();
  // Its bounce comes back at once, and three weeks later: taken.
  EXPECT_EQ(policy.check_local_recipient(sent), "");
  clock.advance_ms(int64_t{20} * 86400 * 1000);
  EXPECT_EQ(policy.check_local_recipient(sent), "");
  // Older than max_age_days: refused, and said why.
  clock.advance_ms(int64_t{3} * 86400 * 1000);
  EXPECT_EQ(policy.check_local_recipient(sent).rfind("550 5.1.1 Not a valid SRS address", 0), 0u)
      << policy.check_local_recipient(sent);
  // Our own senders are never rewritten.
  EXPECT_EQ(policy.outbound_sender(address("bob@example.test")).to_string(), "bob@example.test");
}

}  // namespace
}  // namespace ringmail::engine
