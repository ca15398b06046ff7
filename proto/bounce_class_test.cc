// The matcher: names, the line it matches, first-match order, the
// Uncategorized fallback and the errors of build(). The shipped rule file
// and its TOML form are tested in config/bounce_rules_test.cc.
#include "proto/bounce_class.h"

#include <gtest/gtest.h>

#include <string>

namespace ringmail::proto {
namespace {

BounceClassifier make(std::vector<BounceRule> rules) {
  auto c = BounceClassifier::build(std::move(rules));
  EXPECT_TRUE(c.ok()) << c.error();
  return c.ok() ? std::move(*c) : BounceClassifier();
}

TEST(BounceClassName, RoundTripsEveryClass) {
  const std::vector<std::string_view> want = {
      "InvalidRecipient", "BadDomain",      "InactiveMailbox", "QuotaIssues",
      "SpamBlock",        "SpamContent",    "PolicyRelated",   "AuthenticationFailed",
      "DNSFailure",       "MessageExpired", "RateLimited",     "Uncategorized"};
  ASSERT_EQ(want.size(), kBounceClasses);
  for (size_t i = 0; i < kBounceClasses; ++i) {
    const auto c = static_cast<BounceClass>(i);
    EXPECT_EQ(bounce_class_name(c), want[i]);
    EXPECT_EQ(bounce_class_from_name(want[i]), c);
  }
}

TEST(BounceClassName, UnknownAndWrongCaseAreNotNames) {
  EXPECT_EQ(bounce_class_from_name("invalidrecipient"), std::nullopt);
  EXPECT_EQ(bounce_class_from_name("Invalid"), std::nullopt);
  EXPECT_EQ(bounce_class_from_name(""), std::nullopt);
}

TEST(BounceClassifier, LineJoinsCodeEnhancedAndText) {
  EXPECT_EQ(BounceClassifier::line_of(550, "5.1.1", "no such user"), "550 5.1.1 no such user");
  EXPECT_EQ(BounceClassifier::line_of(554, "", "delivery error"), "554 delivery error");
  // No reply code (a DNS failure, an expiry): the text alone.
  EXPECT_EQ(BounceClassifier::line_of(0, "", "the message expired"), "the message expired");
  EXPECT_EQ(BounceClassifier::line_of(0, "4.4.3", "x"), "4.4.3 x");
  EXPECT_EQ(BounceClassifier::line_of(550, "5.1.1", "a\r\n550-5.1.1 b"), "550 5.1.1 a b");
  // proto::Reply's text carries the enhanced code of each line.
  EXPECT_EQ(BounceClassifier::line_of(550, "5.1.1", "5.1.1 a\n5.1.1 b"), "550 5.1.1 a b");
}

TEST(BounceClassifier, NormalizeJoinsAWrappedReply) {
  // Gmail wraps its texts; a phrase may straddle two lines.
  const std::string raw =
      "421-4.7.28 [203.0.113.7      15] Our system has detected an unusual rate of\r\n"
      "421-4.7.28 unsolicited mail originating from your IP address. To protect our\r\n"
      "421 4.7.28 users from spam.\r\n";
  const std::string want =
      "421 4.7.28 [203.0.113.7 15] Our system has detected an unusual rate of unsolicited mail "
      "originating from your IP address. To protect our users from spam.";
  EXPECT_EQ(BounceClassifier::normalize(raw), want);
  EXPECT_EQ(BounceClassifier::normalize(want), want);
  // proto::Reply::summary() of the same reply.
  EXPECT_EQ(BounceClassifier::normalize("421 4.7.28 [203.0.113.7      15] Our system has detected "
                                        "an unusual rate of 4.7.28 unsolicited mail originating "
                                        "from your IP address. To protect our 4.7.28 users from "
                                        "spam."),
            want);
  const auto c = make({{BounceClass::SpamBlock, {"unusual rate of unsolicited mail"}},
                       {BounceClass::RateLimited, {"rate limit"}}});
  EXPECT_EQ(c.classify_line(raw), BounceClass::SpamBlock);
}

TEST(BounceClassifier, NormalizeKeepsWhatIsNotAPrefix) {
  // No enhanced code: only the repeated reply code goes.
  EXPECT_EQ(BounceClassifier::normalize("554-delivery error:\r\n554 dd This user doesn't exist"),
            "554 delivery error: dd This user doesn't exist");
  // Another status code in the text stays, as do texts without a code.
  EXPECT_EQ(BounceClassifier::normalize("550 5.7.1 see 4.7.1 and 550x"),
            "550 5.7.1 see 4.7.1 and 550x");
  EXPECT_EQ(BounceClassifier::normalize("host mx.example: temporary DNS failure"),
            "host mx.example: temporary DNS failure");
  EXPECT_EQ(BounceClassifier::normalize("4.4.3  x\ty"), "4.4.3 x y");
  EXPECT_EQ(BounceClassifier::normalize(""), "");
  EXPECT_EQ(BounceClassifier::normalize(" \r\n"), "");
}

TEST(BounceClassifier, NoRulesIsUncategorized) {
  const BounceClassifier c;
  EXPECT_EQ(c.classify(550, "5.1.1", "user unknown"), BounceClass::Uncategorized);
  EXPECT_EQ(c.match_line("550 5.1.1 user unknown"), std::nullopt);
}

TEST(BounceClassifier, SearchesCaseInsensitively) {
  const auto c = make({{BounceClass::InvalidRecipient, {"user unknown"}}});
  EXPECT_EQ(c.classify(550, "5.1.1", "<a@b.example>: Recipient address rejected: User Unknown"),
            BounceClass::InvalidRecipient);
  EXPECT_EQ(c.classify(550, "5.1.1", "USER UNKNOWN in local recipient table"),
            BounceClass::InvalidRecipient);
  EXPECT_EQ(c.classify(550, "5.1.1", "unknown user"), BounceClass::Uncategorized);
}

TEST(BounceClassifier, AnchorsSeeTheWholeLine) {
  const auto c = make({{BounceClass::InvalidRecipient, {R"(^5\d\d 5\.1\.1\b)"}},
                       {BounceClass::MessageExpired, {"expired$"}}});
  EXPECT_EQ(c.classify(550, "5.1.1", "whatever"), BounceClass::InvalidRecipient);
  EXPECT_EQ(c.classify(550, "5.1.10", "whatever"), BounceClass::Uncategorized);
  EXPECT_EQ(c.classify(450, "4.1.1", "whatever"), BounceClass::Uncategorized);
  // `^` is the start of the line, not of the text.
  EXPECT_EQ(c.classify(421, "", "550 5.1.1 quoted"), BounceClass::Uncategorized);
  EXPECT_EQ(c.classify(0, "", "the message expired"), BounceClass::MessageExpired);
  EXPECT_EQ(c.classify(0, "", "expired, but then"), BounceClass::Uncategorized);
}

TEST(BounceClassifier, FirstMatchingRuleWinsInOrder) {
  const std::string text = "mailbox full, user unknown";
  const auto quota_first = make({{BounceClass::QuotaIssues, {"mailbox full"}},
                                 {BounceClass::InvalidRecipient, {"user unknown"}}});
  const auto invalid_first = make({{BounceClass::InvalidRecipient, {"user unknown"}},
                                   {BounceClass::QuotaIssues, {"mailbox full"}}});
  EXPECT_EQ(quota_first.classify(550, "", text), BounceClass::QuotaIssues);
  EXPECT_EQ(invalid_first.classify(550, "", text), BounceClass::InvalidRecipient);
}

TEST(BounceClassifier, ReportsTheRuleAndPatternThatMatched) {
  const auto c = make({{BounceClass::QuotaIssues, {"over quota", "mailbox full"}},
                       {BounceClass::InvalidRecipient, {"no such user", "user unknown"}},
                       {BounceClass::QuotaIssues, {"insufficient storage"}}});
  auto m = c.match_line("552 5.2.2 mailbox full");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->cls, BounceClass::QuotaIssues);
  EXPECT_EQ(m->rule, 0u);
  EXPECT_EQ(m->pattern, 1u);
  m = c.match_line("550 user unknown");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->rule, 1u);
  EXPECT_EQ(m->pattern, 1u);
  // A class may appear in several rules; the order of the rules decides.
  m = c.match_line("452 4.3.1 Insufficient storage");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->cls, BounceClass::QuotaIssues);
  EXPECT_EQ(m->rule, 2u);
  EXPECT_EQ(c.rule_count(), 3u);
  EXPECT_EQ(c.rule(1).patterns[0], "no such user");
}

TEST(BounceClassifier, AnUncategorizedRuleStopsTheSearch) {
  const auto c = make({{BounceClass::Uncategorized, {"greylisted"}},
                       {BounceClass::RateLimited, {"try again later"}}});
  EXPECT_EQ(c.classify(451, "4.7.1", "Greylisted, try again later"), BounceClass::Uncategorized);
  EXPECT_EQ(c.classify(451, "4.7.1", "Try again later"), BounceClass::RateLimited);
}

TEST(BounceClassifier, LooksAtABoundedPrefixOfALongLine) {
  const auto c =
      make({{BounceClass::QuotaIssues, {"over quota"}}, {BounceClass::SpamBlock, {"(a|b)*c"}}});
  std::string text(BounceClassifier::kLineBytesMax, 'a');
  EXPECT_EQ(c.classify(0, "", "over quota " + text), BounceClass::QuotaIssues);
  EXPECT_EQ(c.classify(0, "", text + " over quota"), BounceClass::Uncategorized);
  // Far longer than the limit: still answered (and the stack survives).
  EXPECT_EQ(c.classify(0, "", std::string(1 << 20, 'b') + "c"), BounceClass::Uncategorized);
}

TEST(BounceClassifierBuild, BadRegexNamesRuleAndPattern) {
  auto c = BounceClassifier::build(
      {{BounceClass::QuotaIssues, {"over quota"}}, {BounceClass::SpamBlock, {"ok", "(unclosed"}}});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().rfind("rule 2, pattern 2: bad regular expression '(unclosed': ", 0), 0u)
      << c.error();
  EXPECT_EQ(c.error().find('\n'), std::string::npos);
}

TEST(BounceClassifierBuild, CheckPatternSaysWhatBuildWouldSay) {
  EXPECT_TRUE(BounceClassifier::check_pattern(R"(^5\d\d 5\.1\.1\b)").ok());
  const Result<void> bad = BounceClassifier::check_pattern("[a-");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().rfind("bad regular expression '[a-': ", 0), 0u) << bad.error();
  const Result<void> empty = BounceClassifier::check_pattern("");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error(), "empty regular expression (it would match all)");
}

TEST(BounceClassifierBuild, EmptyPatternIsAnError) {
  auto c = BounceClassifier::build({{BounceClass::QuotaIssues, {"over quota", ""}}});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error(), "rule 1, pattern 2: empty regular expression (it would match all)");
}

TEST(BounceClassifierBuild, RuleWithoutPatternsIsAnError) {
  auto c = BounceClassifier::build(
      {{BounceClass::QuotaIssues, {"over quota"}}, {BounceClass::SpamBlock, {}}});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error(), "rule 2: no patterns (it would never match)");
}

}  // namespace
}  // namespace ringmail::proto
