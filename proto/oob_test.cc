#include "proto/oob.h"

#include <gtest/gtest.h>

#include "proto/dsn.h"

namespace ringmail::proto {
namespace {

// A bounce as Postfix writes it (its bounce(8) templates), for a message
// that went through ringmail first.
constexpr char kPostfixDsn[] = R"(Return-Path: <>
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: alice@example.com
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="3F1A2C0A1B.1700000000/mx.example.net"
Message-Id: <20231114221320.3F1A2C0A1B@mx.example.net>

This is a MIME-encapsulated message.

--3F1A2C0A1B.1700000000/mx.example.net
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<nobody@example.net>: unknown user: "nobody"

--3F1A2C0A1B.1700000000/mx.example.net
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 3F1A2C0A1B
X-Postfix-Sender: rfc822; alice@example.com
Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000 (UTC)

Final-Recipient: rfc822; nobody@example.net
Original-Recipient: rfc822;Nobody@example.net
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.net>: Recipient address
    rejected: User unknown in local recipient table

--3F1A2C0A1B.1700000000/mx.example.net
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <alice@example.com>
Received: from relay.example.com (relay.example.com [192.0.2.1])
	by mx.example.net (Postfix) with ESMTP id 3F1A2C0A1B
	for <nobody@example.net>; Tue, 14 Nov 2023 22:13:20 +0000 (UTC)
Received: from client.example (client.example [192.0.2.9])
	by relay.example.com (ringmail) with ESMTPSA id 1K20C7FRQ3S00
	for <nobody@example.net>; Tue, 14 Nov 2023 22:13:19 +0000
Message-ID: <abc@client.example>
From: alice@example.com
To: nobody@example.net
Subject: hi

--3F1A2C0A1B.1700000000/mx.example.net--
)";

// RFC 5965's example feedback report (appendix B.2).
constexpr char kArf[] = R"(From: <abusedesk@example.com>
Date: Thu, 8 Mar 2005 17:40:36 EDT
Subject: FW: Earn money
To: <abuse@example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
     boundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.1 on Thu, 8 Mar 2005 14:00:00 EDT.  For more information
about this format please see http://www.mipassoc.org/arf/.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <somespammer@example.net>
Original-Rcpt-To: <user@example.com>
Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT
Reporting-MTA: dns; mail.example.com
Source-IP: 192.0.2.1
Authentication-Results: mail.example.com;
               spf=fail smtp.mail=somespammer@example.com
Reported-Domain: example.net
Reported-Uri: http://example.net/earn_money.html
Reported-Uri: mailto:user@example.com
Removal-Recipient: user@example.com

--part1_13d.2e68ed54_boundary
Content-Type: message/rfc822
Content-Disposition: inline

From: <somespammer@example.net>
Received: from mailserver.example.net (mailserver.example.net
     [192.0.2.1]) by example.com with ESMTP id M63d4137594e46;
     Thu, 08 Mar 2005 14:00:00 -0400
To: <Undisclosed Recipients>
Subject: Earn money
MIME-Version: 1.0
Content-type: text/plain
Message-ID: 8787KJKJ3K4J3K4J3K4J3.mail@example.net
Date: Thu, 02 Sep 2004 12:31:03 -0500

Spam Spam Spam
Spam Spam Spam
Spam Spam Spam
Spam Spam Spam
--part1_13d.2e68ed54_boundary--
)";

TEST(Oob, PostfixDsn) {
  auto r = parse_oob_report(kPostfixDsn);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->kind, OobReport::Kind::kDsn);
  EXPECT_EQ(r->reporting_mta, "mx.example.net");
  ASSERT_EQ(r->recipients.size(), 1u);
  const OobRecipient& x = r->recipients[0];
  EXPECT_EQ(x.final_recipient, "nobody@example.net");
  EXPECT_EQ(x.original_recipient, "Nobody@example.net");
  EXPECT_EQ(x.action, "failed");
  EXPECT_EQ(x.status, "5.1.1");
  EXPECT_EQ(x.diagnostic,
            "550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown in local "
            "recipient table");
  EXPECT_EQ(x.remote_mta, "mx.example.net");
  EXPECT_EQ(r->original_message_id, "abc@client.example");
  EXPECT_EQ(r->original_queue_id, "1K20C7FRQ3S00");  // ours, not Postfix's
  EXPECT_EQ(r->original_to, "nobody@example.net");
}

// ringmail's own DSN (proto/dsn.h) read back.
TEST(Oob, OwnDsnRoundTrip) {
  DsnInput in;
  in.reporting_host = "mx.example.test";
  in.message_id = "1K20ABCDEFG00";
  in.sender = Address{"alice", "example.test"};
  in.arrival_unix = 1796600000;
  in.now_unix = 1796600100;
  in.recipients.push_back(
      DsnRecipient{Address{"bob", "example.net"}, "", "550 5.1.1 no such user", "mx.example.net"});
  in.recipients.push_back(DsnRecipient{Address{"carol", "example.org"}, "5.4.7",
                                       "delivery failed for 5 days; the message expired", ""});
  const std::string original =
      "Received: from client.example ([192.0.2.9])\r\n\tby mx.example.test (ringmail) with "
      "ESMTPSA id 1K20ABCDEFG00\r\n\tfor <bob@example.net>; Mon, 7 Dec 2026 03:00:00 +0000\r\n"
      "Message-ID: <m1@example.test>\r\nFrom: alice@example.test\r\nTo: bob@example.net\r\n"
      "Subject: hi\r\n\r\nbody\r\n";
  in.original = original;
  auto r = parse_oob_report(make_dsn(in));
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->kind, OobReport::Kind::kDsn);
  EXPECT_EQ(r->reporting_mta, "mx.example.test");
  ASSERT_EQ(r->recipients.size(), 2u);
  EXPECT_EQ(r->recipients[0].final_recipient, "bob@example.net");
  EXPECT_EQ(r->recipients[0].action, "failed");
  EXPECT_EQ(r->recipients[0].status, "5.1.1");
  EXPECT_EQ(r->recipients[0].diagnostic, "550 5.1.1 no such user");
  EXPECT_EQ(r->recipients[0].remote_mta, "mx.example.net");
  EXPECT_EQ(r->recipients[1].final_recipient, "carol@example.org");
  EXPECT_EQ(r->recipients[1].status, "5.4.7");
  EXPECT_EQ(r->original_queue_id, "1K20ABCDEFG00");
  EXPECT_EQ(r->original_message_id, "m1@example.test");
}

TEST(Oob, Rfc5965FeedbackReport) {
  auto r = parse_oob_report(kArf);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->kind, OobReport::Kind::kFeedback);
  EXPECT_EQ(r->feedback_type, "abuse");
  EXPECT_EQ(r->user_agent, "SomeGenerator/1.0");
  EXPECT_EQ(r->original_mail_from, "somespammer@example.net");
  EXPECT_EQ(r->original_rcpt_tos, std::vector<std::string>{"user@example.com"});
  EXPECT_EQ(r->source_ip, "192.0.2.1");
  EXPECT_EQ(r->reporting_mta, "mail.example.com");
  EXPECT_EQ(r->arrival_date, "Thu, 8 Mar 2005 14:00:00 EDT");
  EXPECT_EQ(r->original_message_id, "8787KJKJ3K4J3K4J3K4J3.mail@example.net");
  EXPECT_EQ(r->original_queue_id, "");  // not through ringmail
}

TEST(Oob, NotReports) {
  EXPECT_EQ(parse_oob_report("Subject: hi\r\n\r\nhello\r\n").error(), "not a multipart/report");
  EXPECT_EQ(parse_oob_report("Content-Type: multipart/report; report-type=disposition-"
                             "notification; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n")
                .error(),
            "a multipart/report of type \"disposition-notification\", not delivery-status or "
            "feedback-report");
  EXPECT_EQ(parse_oob_report("Content-Type: multipart/report; report-type=delivery-status; "
                             "boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
                             "x\r\n--b--\r\n")
                .error(),
            "no message/delivery-status part");
  EXPECT_EQ(parse_oob_report("Content-Type: multipart/report; report-type=delivery-status; "
                             "boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status"
                             "\r\n\r\nReporting-MTA: dns; x\r\n\r\n--b--\r\n")
                .error(),
            "a DSN without a recipient block");
}

TEST(Oob, TypedValue) {
  EXPECT_EQ(typed_value("rfc822; Bob@Example.NET"), "Bob@Example.NET");
  EXPECT_EQ(typed_value("smtp;550 no"), "550 no");
  EXPECT_EQ(typed_value(" plain "), "plain");
}

}  // namespace
}  // namespace ringmail::proto
