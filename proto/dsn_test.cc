#include "proto/dsn.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ringmail::proto {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(Dsn, StatusFromReply) {
  EXPECT_EQ(status_of("550 5.1.1 no such user", "5.0.0"), "5.1.1");
  EXPECT_EQ(status_of("550-5.7.1 policy", "5.0.0"), "5.7.1");
  EXPECT_EQ(status_of("550 no such user", "5.0.0"), "5.0.0");
  EXPECT_EQ(status_of("451 try later", "4.0.0"), "4.0.0");
  EXPECT_EQ(status_of("550 4.1.1 mismatched class", "5.0.0"), "5.0.0");
  EXPECT_EQ(status_of("the domain takes no mail", "5.1.10"), "5.1.10");
}

DsnInput input() {
  DsnInput in;
  in.reporting_host = "relay.example.test";
  in.message_id = "1K0Y5JQJXBT00";
  in.sender = Address{"alice", "example.test"};
  in.arrival_unix = 1795430311;
  in.now_unix = 1795430411;
  in.recipients.push_back(
      {Address{"bob", "peer.example"}, "", "550 5.1.1 no such user", "mx.peer.example"});
  in.recipients.push_back(
      {Address{"carol", "null.example"}, "5.1.10", "the domain takes no mail (null MX)", ""});
  in.original =
      "Received: from x\r\nSubject: hello\r\nFrom: alice@example.test\r\n\r\nsecret body\r\n";
  return in;
}

TEST(Dsn, FailureReport) {
  const std::string d = make_dsn(input());
  EXPECT_THAT(d, HasSubstr("From: Mail Delivery System <MAILER-DAEMON@relay.example.test>\r\n"));
  EXPECT_THAT(d, HasSubstr("To: <alice@example.test>\r\n"));
  EXPECT_THAT(d, HasSubstr("Auto-Submitted: auto-replied\r\n"));
  EXPECT_THAT(d, HasSubstr("Content-Type: multipart/report; report-type=delivery-status;"));
  EXPECT_THAT(d, HasSubstr("Reporting-MTA: dns; relay.example.test\r\n"));
  EXPECT_THAT(d, HasSubstr("Final-Recipient: rfc822; bob@peer.example\r\nAction: failed\r\n"
                           "Status: 5.1.1\r\nRemote-MTA: dns; mx.peer.example\r\n"
                           "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"));
  EXPECT_THAT(d,
              HasSubstr("Final-Recipient: rfc822; carol@null.example\r\nAction: failed\r\n"
                        "Status: 5.1.10\r\nDiagnostic-Code: X-ringmail; the domain takes no mail"));
  EXPECT_THAT(d, HasSubstr("Content-Type: text/rfc822-headers\r\n\r\nReceived: from x\r\n"
                           "Subject: hello\r\nFrom: alice@example.test\r\n"));
  EXPECT_THAT(d, Not(HasSubstr("secret body")));  // headers only
  EXPECT_THAT(d, HasSubstr("--1K0Y5JQJXBT00/relay.example.test--\r\n"));
  // Every line ends in CRLF.
  for (size_t i = 0; i < d.size(); ++i) {
    if (d[i] == '\n') {
      ASSERT_TRUE(i > 0 && d[i - 1] == '\r') << i;
    }
  }
}

TEST(Dsn, DelayWarning) {
  DsnInput in = input();
  in.delayed = true;
  in.retry_until_unix = in.arrival_unix + 5 * 86400;
  in.recipients.resize(1);
  in.recipients[0].diagnostic = "451 4.7.1 greylisted";
  const std::string d = make_dsn(in);
  EXPECT_THAT(d, HasSubstr("Subject: Delivery delayed: still trying\r\n"));
  EXPECT_THAT(d, HasSubstr("Action: delayed\r\nStatus: 4.7.1\r\n"));
  EXPECT_THAT(d, HasSubstr("Will-Retry-Until: "));
  EXPECT_THAT(d, HasSubstr("you do not need to send it again"));
}

}  // namespace
}  // namespace ringmail::proto
