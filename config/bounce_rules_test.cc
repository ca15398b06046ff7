// The TOML form of the bounce rules (every error it can report) and the
// shipped config/bounce_rules.toml: each of its patterns is the first to
// match at least one real reply below, and each reply gets its class.
#include "config/bounce_rules.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <utility>

namespace ringmail::config {
namespace {

using proto::BounceClass;
using ::testing::HasSubstr;

struct Case {
  int code;
  const char* enhanced;
  const char* text;
  BounceClass want;
};

// Real replies, as the receivers publish or send them (multi-line replies
// joined into one), and ringmail's own failure texts (no reply code).
const Case kCases[] = {
    // ringmail (engine/outbound_queue.cc, engine/outbound.cc, proto/dns.cc)
    {0, "", "delivery failed for 5 days; the message expired", BounceClass::MessageExpired},
    {0, "", "MX lookup for example.com failed for now", BounceClass::DNSFailure},
    {0, "", "host mx1.example.com: temporary DNS failure", BounceClass::DNSFailure},
    {0, "", "host mx1.example.com: no such record", BounceClass::DNSFailure},
    {0, "", "host mx1.example.com: no such domain", BounceClass::DNSFailure},
    {0, "", "domain nowhere.example does not exist (DNS: NXDOMAIN)", BounceClass::BadDomain},
    {0, "", "domain example.com accepts no mail (null MX, RFC 7505)", BounceClass::BadDomain},
    // Gmail
    {550, "5.1.1",
     "The email account that you tried to reach does not exist. Please try double-checking the "
     "recipient's email address for typos or unnecessary spaces. For more information, go to "
     "https://support.google.com/mail/?p=NoSuchUser",
     BounceClass::InvalidRecipient},
    {550, "5.2.1", "The email account that you tried to reach is disabled.",
     BounceClass::InactiveMailbox},
    {550, "5.2.1", "The email account that you tried to reach is inactive.",
     BounceClass::InactiveMailbox},
    {452, "4.2.2",
     "The email account that you tried to reach is over quota. Please direct the recipient to "
     "https://support.google.com/mail/?p=OverQuotaTemp",
     BounceClass::QuotaIssues},
    {552, "5.2.2", "The email account that you tried to reach is over quota.",
     BounceClass::QuotaIssues},
    {450, "4.2.1",
     "The user you are trying to contact is receiving mail too quickly. Please resend your "
     "message at a later time.",
     BounceClass::RateLimited},
    {550, "5.2.1",
     "The user you are trying to contact is receiving mail at a rate that prevents additional "
     "messages from being delivered.",
     BounceClass::RateLimited},
    {550, "5.7.1",
     "[203.0.113.7      12] Our system has detected that this message is likely unsolicited "
     "mail. To reduce the amount of spam sent to Gmail, this message has been blocked. For more "
     "information, go to https://support.google.com/mail/?p=UnsolicitedMessageError",
     BounceClass::SpamContent},
    {421, "4.7.28",
     "[203.0.113.7      15] Our system has detected an unusual rate of unsolicited mail "
     "originating from your IP address. To protect our users from spam, mail sent from your IP "
     "address has been temporarily rate limited.",
     BounceClass::SpamBlock},
    {550, "5.7.26",
     "This mail has been blocked because the sender is unauthenticated. Gmail requires all "
     "senders to authenticate with either SPF or DKIM.",
     BounceClass::AuthenticationFailed},
    {550, "5.7.26",
     "Unauthenticated email from example.com is not accepted due to domain's DMARC policy. "
     "Please contact the administrator of example.com domain if this was a legitimate mail.",
     BounceClass::AuthenticationFailed},
    {550, "5.7.25",
     "[203.0.113.7] The IP address sending this message does not have a PTR record setup, or the "
     "corresponding forward DNS entry does not point to the sending IP.",
     BounceClass::AuthenticationFailed},
    {421, "4.7.23",
     "The sending IP does not match the IP address of the hostname specified in the pointer "
     "(PTR) record.",
     BounceClass::AuthenticationFailed},
    {552, "5.7.0",
     "This message was blocked because its content presents a potential security issue.",
     BounceClass::SpamContent},
    {552, "5.2.3", "Your message exceeded Google's message size limits.",
     BounceClass::PolicyRelated},
    {550, "5.7.1",
     "The user or domain that you are sending to (or from) has a policy that prohibits the mail "
     "that you sent.",
     BounceClass::PolicyRelated},
    {550, "5.7.1",
     "[203.0.113.7] Our system has detected that this message is not RFC 5322 compliant.",
     BounceClass::PolicyRelated},
    {421, "4.7.0", "Try again later, closing connection. (EHLO)", BounceClass::RateLimited},
    {530, "5.7.0", "Must issue a STARTTLS command first.", BounceClass::PolicyRelated},
    // Microsoft 365 and Outlook.com
    {550, "5.5.0", "Requested action not taken: mailbox unavailable",
     BounceClass::InvalidRecipient},
    {550, "5.4.1",
     "Recipient address rejected: Access denied. For more information see "
     "https://aka.ms/EXOSmtpErrors",
     BounceClass::InvalidRecipient},
    {550, "5.1.10", "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
     BounceClass::InvalidRecipient},
    {550, "5.7.708",
     "Service unavailable. Access denied, traffic not accepted from this IP. For more "
     "information please go to http://go.microsoft.com/fwlink/?LinkId=526653",
     BounceClass::SpamBlock},
    {550, "5.7.511",
     "Access denied, banned sender[203.0.113.7]. To request removal from this list, please "
     "forward this message to delist@messaging.microsoft.com.",
     BounceClass::SpamBlock},
    {550, "5.7.606",
     "Access denied, banned sending IP [203.0.113.7]. To request removal from this list please "
     "visit https://sender.office.com/ and follow the directions.",
     BounceClass::SpamBlock},
    {451, "4.7.650",
     "The mail server [203.0.113.7] has been temporarily rate limited due to IP reputation. For "
     "e-mail delivery information, see https://postmaster.live.com (S775)",
     BounceClass::SpamBlock},
    {550, "5.7.1",
     "Unfortunately, messages from [203.0.113.7] weren't sent. Please contact your Internet "
     "service provider since part of their network is on our block list (S3150).",
     BounceClass::SpamBlock},
    {550, "5.7.1",
     "Service unavailable, Client host [203.0.113.7] blocked using Spamhaus. To request removal "
     "from this list see https://www.spamhaus.org/query/ip/203.0.113.7",
     BounceClass::SpamBlock},
    {554, "5.2.2",
     "mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuota"
     "Exceeded",
     BounceClass::QuotaIssues},
    {550, "5.7.509",
     "Access denied, sending domain [example.com] does not pass DMARC verification and has a "
     "DMARC policy of reject.",
     BounceClass::AuthenticationFailed},
    {550, "5.7.23", "The message was rejected because of Sender Policy Framework violation",
     BounceClass::AuthenticationFailed},
    {550, "5.7.350", "Remote server returned message detected as spam", BounceClass::SpamContent},
    {550, "5.7.520", "Access denied, Your organization does not allow external forwarding.",
     BounceClass::PolicyRelated},
    {452, "4.5.3", "Too many recipients", BounceClass::RateLimited},
    {450, "4.7.500", "Server busy. Please try again later from [203.0.113.7]. (S77719)",
     BounceClass::RateLimited},
    {550, "5.4.310", "DNS domain example.com does not exist [Message=InfoDomainNonexistent]",
     BounceClass::BadDomain},
    {451, "4.4.0", "DNS query failed. The error was: DNS query failed with error: ErrorRetry",
     BounceClass::DNSFailure},
    {550, "4.4.7", "QUEUE.Expired; message expired", BounceClass::MessageExpired},
    {400, "4.4.7", "Message delayed", BounceClass::MessageExpired},
    // Yahoo
    {554, "",
     "delivery error: dd This user doesn't have a yahoo.com account (someone@yahoo.com) [0] - "
     "mta1234.mail.ne1.yahoo.com",
     BounceClass::InvalidRecipient},
    {554, "",
     "delivery error: dd Sorry your message to someone@yahoo.com cannot be delivered. This "
     "mailbox is disabled (554.30). - mta1234.mail.ne1.yahoo.com",
     BounceClass::InactiveMailbox},
    {552, "", "1 Requested mail action aborted, mailbox not found", BounceClass::InvalidRecipient},
    {421, "4.7.0",
     "[TSS04] Messages from 203.0.113.7 temporarily deferred due to unexpected volume or user "
     "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
     BounceClass::RateLimited},
    {553, "5.7.2",
     "[TSS09] All messages from 203.0.113.7 will be permanently deferred; Retrying will NOT "
     "succeed. See https://postmaster.yahooinc.com/error-codes",
     BounceClass::SpamBlock},
    {553, "5.7.1",
     "[BL21] Connections will not be accepted from 203.0.113.7, because the ip is in Spamhaus's "
     "list; see https://postmaster.yahooinc.com/error-codes",
     BounceClass::SpamBlock},
    {554, "5.7.9",
     "Message not accepted for policy reasons. See https://postmaster.yahooinc.com/error-codes",
     BounceClass::PolicyRelated},
    {550, "5.7.9",
     "This mail has been blocked because the sender is unauthenticated. Yahoo requires all "
     "senders to authenticate with either SPF or DKIM.",
     BounceClass::AuthenticationFailed},
    // iCloud
    {550, "5.1.1", "<someone@icloud.com>: user does not exist", BounceClass::InvalidRecipient},
    {550, "5.1.1", "unknown or illegal alias: someone@icloud.com", BounceClass::InvalidRecipient},
    {554, "5.7.1",
     "[CS01] Message rejected due to local policy. Please visit "
     "https://support.apple.com/en-us/HT204137",
     BounceClass::PolicyRelated},
    {554, "5.7.1",
     "[HM08] Message rejected due to local policy. Please visit "
     "https://support.apple.com/en-us/HT204137",
     BounceClass::PolicyRelated},
    {550, "5.7.0", "Blocked - see https://ipcheck.proofpoint.com/?ip=203.0.113.7",
     BounceClass::SpamBlock},
    // Postfix, Sendmail, Mimecast
    {550, "5.1.1",
     "<someone@example.com>: Recipient address rejected: User unknown in virtual mailbox table",
     BounceClass::InvalidRecipient},
    {554, "5.7.1", "<someone@example.com>: Relay access denied", BounceClass::PolicyRelated},
    {554, "5.7.1", "<someone@example.com>: Recipient address rejected: Access denied",
     BounceClass::PolicyRelated},
    {450, "4.1.2", "<someone@nowhere.example>: Recipient address rejected: Domain not found",
     BounceClass::BadDomain},
    {451, "4.4.3",
     "Host or domain name not found. Name service error for name=example.com type=MX: Host not "
     "found, try again",
     BounceClass::DNSFailure},
    {550, "5.1.2",
     "<someone@nowhere.example>... Host unknown (Name server: nowhere.example.: host "
     "not found)",
     BounceClass::BadDomain},
    {550, "", "Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550",
     BounceClass::InvalidRecipient},
};

const proto::BounceClassifier& defaults() { return default_bounce_classifier(); }

TEST(DefaultBounceRules, EachReplyGetsItsClass) {
  for (const Case& c : kCases) {
    EXPECT_EQ(proto::bounce_class_name(defaults().classify(c.code, c.enhanced, c.text)),
              proto::bounce_class_name(c.want))
        << proto::BounceClassifier::line_of(c.code, c.enhanced, c.text);
  }
}

TEST(DefaultBounceRules, EveryPatternIsTheFirstMatchOfSomeReply) {
  std::set<std::pair<size_t, size_t>> hit;
  for (const Case& c : kCases) {
    const auto m =
        defaults().match_line(proto::BounceClassifier::line_of(c.code, c.enhanced, c.text));
    if (m) hit.insert({m->rule, m->pattern});
  }
  ASSERT_GT(defaults().rule_count(), 0u);
  for (size_t r = 0; r < defaults().rule_count(); ++r) {
    const proto::BounceRule& rule = defaults().rule(r);
    for (size_t p = 0; p < rule.patterns.size(); ++p) {
      EXPECT_TRUE(hit.count({r, p}))
          << "rule " << r + 1 << " (" << proto::bounce_class_name(rule.cls) << "), pattern "
          << p + 1 << " '" << rule.patterns[p] << "' is the first match of no reply";
    }
  }
}

TEST(DefaultBounceRules, EveryClassButUncategorizedHasARule) {
  std::set<BounceClass> classes;
  for (size_t r = 0; r < defaults().rule_count(); ++r) classes.insert(defaults().rule(r).cls);
  for (size_t i = 0; i < proto::kBounceClasses; ++i) {
    const auto c = static_cast<BounceClass>(i);
    if (c == BounceClass::Uncategorized) continue;
    EXPECT_TRUE(classes.count(c)) << proto::bounce_class_name(c);
  }
}

TEST(DefaultBounceRules, WrappedRepliesAreReadAsOneLine) {
  // As Gmail sends them, and as proto::Reply::summary() gives them.
  EXPECT_EQ(
      defaults().classify_line(
          "421-4.7.28 [203.0.113.7      15] Our system has detected an unusual rate of\r\n"
          "421-4.7.28 unsolicited mail originating from your IP address. To protect our\r\n"
          "421-4.7.28 users from spam, mail sent from your IP address has been temporarily\r\n"
          "421 4.7.28 rate limited. Please visit https://support.google.com/mail/?p=Unsolici"
          "tedRateLimitError to review our Bulk Email Senders Guidelines.\r\n"),
      BounceClass::SpamBlock);
  EXPECT_EQ(defaults().classify(550, "",
                                "5.1.1 The email account that you tried to reach does\n5.1.1 not "
                                "exist. Please try double-checking the recipient's email"),
            BounceClass::InvalidRecipient);
  EXPECT_EQ(defaults().classify_line("550 5.7.1 [203.0.113.7] Our system has detected that this "
                                     "message is 5.7.1 likely unsolicited mail."),
            BounceClass::SpamContent);
}

TEST(DefaultBounceRules, UnknownRepliesAreUncategorized) {
  EXPECT_EQ(defaults().classify(451, "4.3.0", "Mail server temporarily rejected message."),
            BounceClass::Uncategorized);
  EXPECT_EQ(defaults().classify(0, "", "no mail server of example.com could be reached"),
            BounceClass::Uncategorized);
  EXPECT_EQ(defaults().classify(250, "2.0.0", "OK"), BounceClass::Uncategorized);
}

TEST(DefaultBounceRules, TextIsTheShippedFile) {
  auto c = parse_bounce_rules(default_bounce_rules_text(), "bounce_rules.toml");
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->rule_count(), defaults().rule_count());
  EXPECT_THAT(default_bounce_rules_text(), HasSubstr("class = \"InvalidRecipient\""));
}

// parse_bounce_rules' error for `text`, or a test failure.
std::string err_of(const std::string& text) {
  auto c = parse_bounce_rules(text, "r.toml");
  EXPECT_FALSE(c.ok());
  if (c.ok()) return "";
  EXPECT_EQ(c.error().find('\n'), std::string::npos) << c.error();
  return c.error();
}

constexpr char kGood[] = "[[rule]]\nclass = \"QuotaIssues\"\npatterns = ['over quota']\n";

TEST(BounceRulesToml, ReadsRulesInFileOrder) {
  auto c = parse_bounce_rules(std::string(kGood) +
                                  "[[rule]]\nclass = \"InvalidRecipient\"\n"
                                  "patterns = ['^5\\d\\d 5\\.1\\.1\\b', 'user unknown']\n",
                              "r.toml");
  ASSERT_TRUE(c.ok()) << c.error();
  ASSERT_EQ(c->rule_count(), 2u);
  EXPECT_EQ(c->rule(1).patterns[0], "^5\\d\\d 5\\.1\\.1\\b");
  EXPECT_EQ(c->classify(550, "5.1.1", "over quota"), BounceClass::QuotaIssues);
  EXPECT_EQ(c->classify(550, "5.1.1", "gone"), BounceClass::InvalidRecipient);
  EXPECT_EQ(c->classify(550, "5.7.1", "no"), BounceClass::Uncategorized);
}

TEST(BounceRulesToml, EmptyFileHasNoRules) {
  for (const char* text : {"# nothing\n", "rule = []\n"}) {
    auto c = parse_bounce_rules(text, "r.toml");
    ASSERT_TRUE(c.ok()) << c.error();
    EXPECT_EQ(c->rule_count(), 0u);
    EXPECT_EQ(c->classify(550, "5.1.1", "user unknown"), BounceClass::Uncategorized);
  }
}

TEST(BounceRulesToml, Errors) {
  EXPECT_THAT(err_of("[[rule]\n"), HasSubstr("r.toml:1: "));
  EXPECT_EQ(err_of("rules = 1\n"), "r.toml:1: rules: unknown key (only [[rule]] tables)");
  EXPECT_EQ(err_of("rule = 1\n"), "r.toml:1: rule: must be an array of tables ([[rule]])");
  EXPECT_EQ(err_of("rule = ['x']\n"), "r.toml:1: rule: must be an array of tables ([[rule]])");
  EXPECT_EQ(err_of(std::string(kGood) + "[[rule]]\npatterns = ['x']\n"),
            "r.toml: rule 2 (line 4): class is missing");
  EXPECT_EQ(err_of(std::string(kGood) + "[[rule]]\nclass = 3\npatterns = ['x']\n"),
            "r.toml: rule 2 (line 4): class must be a string");
  EXPECT_EQ(err_of(std::string(kGood) + "[[rule]]\nclass = \"Bogus\"\npatterns = ['x']\n"),
            "r.toml: rule 2 (line 4): unknown class \"Bogus\" (see docs/bounce-classes.md)");
  EXPECT_EQ(err_of(std::string(kGood) + "[[rule]]\nclass = \"invalidrecipient\"\n"
                                        "patterns = ['x']\n"),
            "r.toml: rule 2 (line 4): unknown class \"invalidrecipient\" "
            "(see docs/bounce-classes.md)");
  EXPECT_EQ(err_of("[[rule]]\nclass = \"SpamBlock\"\n"),
            "r.toml: rule 1 (line 1): patterns is missing");
  EXPECT_EQ(err_of("[[rule]]\nclass = \"SpamBlock\"\npatterns = 'x'\n"),
            "r.toml: rule 1 (line 1): patterns must be an array of strings");
  EXPECT_EQ(err_of("[[rule]]\nclass = \"SpamBlock\"\npatterns = []\n"),
            "r.toml: rule 1 (line 1): patterns is empty (the rule would never match)");
  EXPECT_EQ(err_of("[[rule]]\nclass = \"SpamBlock\"\npatterns = ['x', 7]\n"),
            "r.toml: rule 1 (line 1): pattern 2 must be a string");
  EXPECT_EQ(err_of("[[rule]]\nclass = \"SpamBlock\"\npatterns = ['x', '']\n"),
            "r.toml: rule 1 (line 1): pattern 2 (line 3): empty regular expression (it would "
            "match all)");
  EXPECT_THAT(err_of(std::string(kGood) + "[[rule]]\nclass = \"SpamBlock\"\npatterns = [\n  'ok',\n"
                                          "  'blocked (using',\n]\n"),
              HasSubstr("r.toml: rule 2 (line 4): pattern 2 (line 8): bad regular expression "
                        "'blocked (using': "));
  EXPECT_EQ(err_of("[[rule]]\nclass = \"SpamBlock\"\npatterns = ['x']\nclasses = 'y'\n"),
            "r.toml: rule 1 (line 1): classes: unknown key (class, patterns)");
}

TEST(BounceRulesToml, ErrorsNameTheRuleOfAnArrayOfInlineTables) {
  // rule = [{...}, {...}] is the same array of tables written inline.
  EXPECT_EQ(err_of("rule = [{class = \"SpamBlock\", patterns = ['x']}, {class = \"No\", "
                   "patterns = ['y']}]\n"),
            "r.toml: rule 2 (line 1): unknown class \"No\" (see docs/bounce-classes.md)");
}

}  // namespace
}  // namespace ringmail::config
