// tools/queue_format.h on answers shaped as docs/admin-api.md's examples.
#include "tools/queue_format.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdlib>
#include <ctime>

namespace ringmail::tools {
namespace {

// GET /api/queue, docs/admin-api.md's example.
constexpr std::string_view kSummary = R"({
  "now_unix": 1796000000,
  "messages": 3, "recipients": 4, "bytes": 31337,
  "buckets": ["0-5m", "5-10m", "10-20m", "20-40m", "40-80m", "80-160m", "160m+"],
  "domains": [
    {"domain": "example.net", "messages": 2, "recipients": 3, "bytes": 20000,
     "ages": [3, 0, 0, 0, 0, 0, 0],
     "held": 0, "in_flight": 1,
     "last_error": "451 4.7.1 try again later",
     "suspended": {"until_unix": 1796007200, "reason": "their abuse desk asked"}}
  ],
  "suspended": [{"domain": "example.net", "until_unix": 1796007200, "reason": "..."}]
})";

// GET /api/queue/messages, docs/admin-api.md's example.
constexpr std::string_view kPage = R"({
  "messages": [
    {"id": "0ABCDEFGHJK00", "arrival_unix": 1796000000,
     "sender": "app@example.test", "size": 1234, "held": false,
     "attempts": 2, "next_attempt_unix": 1796000900,
     "recipients": [
       {"address": "a@example.net", "state": "waiting", "attempts": 2,
        "next_attempt_unix": 1796000900, "last_reply": "451 4.7.1 try again later"},
       {"address": "b@example.org", "state": "delivered", "attempts": 1,
        "next_attempt_unix": 0, "last_reply": ""}
     ]}
  ],
  "next_cursor": "0ABCDEFGHJK00"
})";

// The last page: a held message, one in a delivery attempt, a bounce (the
// null sender) whose two recipients got the same reply.
constexpr std::string_view kLastPage = R"({
  "messages": [
    {"id": "0ABCDEFGHJK01", "arrival_unix": 1796000060,
     "sender": "news@example.test", "size": 20000, "held": true,
     "attempts": 0, "next_attempt_unix": 0,
     "recipients": [
       {"address": "c@example.net", "state": "held", "attempts": 0,
        "next_attempt_unix": 0, "last_reply": ""}
     ]},
    {"id": "0ABCDEFGHJK02", "arrival_unix": 1796000120,
     "sender": "app@example.test", "size": 2103, "held": false,
     "attempts": 1, "next_attempt_unix": 0,
     "recipients": [
       {"address": "d@example.net", "state": "in_flight", "attempts": 1,
        "next_attempt_unix": 0, "last_reply": ""},
       {"address": "e@example.org", "state": "failed", "attempts": 1,
        "next_attempt_unix": 0, "last_reply": "550 5.1.1 no such user"}
     ]},
    {"id": "0ABCDEFGHJK03", "arrival_unix": 1796000180,
     "sender": "", "size": 8000, "held": false,
     "attempts": 3, "next_attempt_unix": 1796003600,
     "recipients": [
       {"address": "f@example.com", "state": "waiting", "attempts": 3,
        "next_attempt_unix": 1796003600,
        "last_reply": "connect to mx.example.com[192.0.2.1]:25: Connection timed out"},
       {"address": "g@example.com", "state": "waiting", "attempts": 3,
        "next_attempt_unix": 1796003600,
        "last_reply": "connect to mx.example.com[192.0.2.1]:25: Connection timed out"}
     ]}
  ],
  "next_cursor": null
})";

class LocalTimeIsUtc : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("TZ", "UTC", 1);
    ::tzset();
  }
};

TEST(QueueSummary, QshapeTableTotalsAndSuspensions) {
  auto text = format_summary(kSummary);
  ASSERT_TRUE(text) << text.error();
  EXPECT_EQ(*text,
            "queue: 3 messages, 4 recipients, 31337 bytes\n"
            "            T 0-5m 5-10m 10-20m 20-40m 40-80m 80-160m 160m+ held in flight  last "
            "error\n"
            "      TOTAL 4    3     0      0      0      0       0     0    0         1\n"
            "example.net 3    3     0      0      0      0       0     0    0         1  451 "
            "4.7.1 try again later\n"
            "\n"
            "suspended destinations:\n"
            "  example.net  until 2026-11-30 02:53:20 UTC (2h 00m from now): ...\n");
}

TEST(QueueSummary, EmptyQueueStillHasItsTotalLine) {
  auto text = format_summary(
      R"({"now_unix": 1796000000, "messages": 0, "recipients": 0, "bytes": 0,
          "buckets": ["0-5m", "5-10m", "10-20m", "20-40m", "40-80m", "80-160m", "160m+"],
          "domains": [], "suspended": []})");
  ASSERT_TRUE(text) << text.error();
  EXPECT_EQ(*text,
            "queue: 0 messages, 0 recipients, 0 bytes\n"
            "      T 0-5m 5-10m 10-20m 20-40m 40-80m 80-160m 160m+ held in flight  last error\n"
            "TOTAL 0    0     0      0      0      0       0     0    0         0\n");
}

TEST(QueueSummary, LongErrorsAreShortenedAndControlCharactersHidden) {
  auto text = format_summary(
      R"({"now_unix": 1796000000, "messages": 1, "recipients": 1, "bytes": 10,
          "buckets": ["0-5m"],
          "domains": [{"domain": "x.example", "messages": 1, "recipients": 1, "bytes": 10,
                       "ages": [1], "held": 1, "in_flight": 0, "suspended": null,
                       "last_error": "421 4.7.0 \u001b[2Jtry again later, we are very busy right now, sorry"}],
          "suspended": []})");
  ASSERT_TRUE(text) << text.error();
  EXPECT_NE(text->find("421 4.7.0 ?[2Jtry again later, we are very busy..."), std::string::npos)
      << *text;
  EXPECT_EQ(text->find('\x1b'), std::string::npos);
}

TEST(QueueSummary, MissingFieldOrNotJsonIsOneLine) {
  auto missing = format_summary(R"({"now_unix": 1, "messages": 0})");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(),
            "ringmaild's answer has no \"recipients\" as expected (another version?)");
  auto garbage = format_summary("<html>");
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error(), "ringmaild's answer is not a JSON object");
}

TEST_F(LocalTimeIsUtc, MailqLayoutOfDeferredHeldAndInFlightMessages) {
  MailqTotals totals;
  auto first = format_mailq_page(kPage, &totals);
  ASSERT_TRUE(first) << first.error();
  auto last = format_mailq_page(kLastPage, &totals);
  ASSERT_TRUE(last) << last.error();
  const std::string reply1 = "(451 4.7.1 try again later)";
  const std::string reply2 = "(connect to mx.example.com[192.0.2.1]:25: Connection timed out)";
  const std::string indent(41, ' ');
  EXPECT_EQ(*first + *last + format_mailq_end(totals),
            "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
            "0ABCDEFGHJK00    1234 Mon Nov 30 00:53:20  app@example.test\n" +
                std::string(78 - reply1.size(), ' ') + reply1 + "\n" + indent +
                "a@example.net\n"
                "\n"
                "0ABCDEFGHJK01!   20000 Mon Nov 30 00:54:20  news@example.test\n" +
                indent +
                "c@example.net\n"
                "\n"
                "0ABCDEFGHJK02*    2103 Mon Nov 30 00:55:20  app@example.test\n" +
                indent +
                "d@example.net\n"
                "\n"
                "0ABCDEFGHJK03    8000 Mon Nov 30 00:56:20  MAILER-DAEMON\n" +
                std::string(78 - reply2.size(), ' ') + reply2 + "\n" + indent + "f@example.com\n" +
                indent +
                "g@example.com\n"
                "\n"
                "-- 30 Kbytes in 4 Requests.\n");
  EXPECT_EQ(totals.messages, 4u);
  EXPECT_EQ(totals.bytes, 1234u + 20000 + 2103 + 8000);
}

TEST_F(LocalTimeIsUtc, MailqDaysBelowTenArePaddedAsAsctime) {
  MailqTotals totals;
  auto text = format_mailq_page(
      R"({"messages": [{"id": "0ABCDEFGHJK04", "arrival_unix": 1796601600, "sender": "a@b.example",
          "size": 1, "held": false, "attempts": 0, "next_attempt_unix": 0, "recipients": []}],
          "next_cursor": null})",
      &totals);
  ASSERT_TRUE(text) << text.error();
  EXPECT_NE(text->find("0ABCDEFGHJK04       1 Mon Dec  7 00:00:00  a@b.example\n"),
            std::string::npos)
      << *text;
  EXPECT_EQ(format_mailq_end(totals), "-- 0 Kbytes in 1 Request.\n");
}

TEST(Mailq, EmptyQueue) {
  MailqTotals totals;
  auto text = format_mailq_page(R"({"messages": [], "next_cursor": null})", &totals);
  ASSERT_TRUE(text) << text.error();
  EXPECT_EQ(*text, "");
  EXPECT_EQ(format_mailq_end(totals), "Mail queue is empty\n");
}

TEST(Mailq, LongReplyStartsAtTheLeftMargin) {
  MailqTotals totals;
  const std::string reply(90, 'x');
  auto text = format_mailq_page(
      R"({"messages": [{"id": "0ABCDEFGHJK05", "arrival_unix": 1796000000, "sender": "a@b.example",
          "size": 1, "held": false, "attempts": 1, "next_attempt_unix": 0, "recipients": [
          {"address": "c@d.example", "state": "waiting", "attempts": 1, "next_attempt_unix": 0,
           "last_reply": ")" +
          reply + R"("}]}], "next_cursor": null})",
      &totals);
  ASSERT_TRUE(text) << text.error();
  EXPECT_NE(text->find("\n(" + reply + ")\n"), std::string::npos) << *text;
}

TEST(QueueList, BlocksOfAPage) {
  auto text = format_list_page(kPage);
  ASSERT_TRUE(text) << text.error();
  EXPECT_EQ(*text,
            "0ABCDEFGHJK00  1234 bytes  arrived 2026-11-30 00:53:20 UTC  from <app@example.test>\n"
            "  to <a@example.net>: waiting, 2 attempts, next 2026-11-30 01:08:20 UTC\n"
            "      451 4.7.1 try again later\n"
            "  to <b@example.org>: delivered, 1 attempt\n"
            "\n");
  auto last = format_list_page(kLastPage);
  ASSERT_TRUE(last) << last.error();
  EXPECT_NE(last->find("0ABCDEFGHJK01  20000 bytes  arrived 2026-11-30 00:54:20 UTC  from "
                       "<news@example.test>  HELD\n  to <c@example.net>: held, 0 attempts\n"),
            std::string::npos)
      << *last;
  EXPECT_NE(last->find("  to <d@example.net>: in flight, 1 attempt\n"), std::string::npos);
  EXPECT_NE(last->find("from <>\n"), std::string::npos);
}

TEST(QueueList, JsonStreamsOneDocumentOverPages) {
  bool first = true;
  std::string doc = "{\"messages\":[";
  for (std::string_view page :
       {kPage, std::string_view(R"({"messages": [], "next_cursor": "x"})"), kLastPage}) {
    auto part = json_page_messages(page, &first);
    ASSERT_TRUE(part) << part.error();
    doc += *part;
  }
  doc += "]}";
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(doc).get(root), simdjson::SUCCESS) << doc;
  simdjson::dom::array messages;
  ASSERT_EQ(root["messages"].get(messages), simdjson::SUCCESS);
  EXPECT_EQ(messages.size(), 4u);
  std::string_view id;
  ASSERT_EQ(messages.at(3)["id"].get(id), simdjson::SUCCESS);
  EXPECT_EQ(id, "0ABCDEFGHJK03");
}

TEST(QueueList, PageInfoReadsTheCursor) {
  auto more = page_info(kPage);
  ASSERT_TRUE(more) << more.error();
  EXPECT_EQ(more->messages, 1u);
  ASSERT_TRUE(more->next_cursor.has_value());
  EXPECT_EQ(*more->next_cursor, "0ABCDEFGHJK00");
  auto done = page_info(kLastPage);
  ASSERT_TRUE(done) << done.error();
  EXPECT_EQ(done->messages, 3u);
  EXPECT_FALSE(done->next_cursor.has_value());
  EXPECT_FALSE(page_info(R"({"messages": []})"));
  EXPECT_FALSE(page_info(R"({"messages": [], "next_cursor": 3})"));
}

TEST(QueueList, FiltersBecomeAnEncodedQuery) {
  EXPECT_EQ(list_target({}), "/api/queue/messages");
  ListFilter f;
  f.domain = "example.net";
  f.sender = "app+x@example.test";
  f.rcpt = "a b@example.net";
  f.older_than_s = 3600;
  f.state = "in_flight";
  EXPECT_EQ(list_target(f),
            "/api/queue/messages?domain=example.net&sender=app%2Bx%40example.test"
            "&rcpt=a%20b%40example.net&older_than=3600&state=in_flight");
  ListFilter null_sender;
  null_sender.sender = "";
  EXPECT_EQ(list_target(null_sender), "/api/queue/messages?sender=%3C%3E");
}

TEST(QueueShow, HeadersOrTheWholeMessage) {
  const std::string one = R"({"id": "0ABCDEFGHJK00", "arrival_unix": 1796000000,
     "sender": "app@example.test", "size": 1234, "held": false,
     "attempts": 2, "next_attempt_unix": 1796000900,
     "recipients": [], "client": "192.0.2.7", "helo": "app.example.test",
     "headers": "Subject: hi\r\nFrom: app@example.test\r\n")";
  auto headers = format_message(one + "}");
  ASSERT_TRUE(headers) << headers.error();
  EXPECT_EQ(*headers,
            "0ABCDEFGHJK00  1234 bytes  arrived 2026-11-30 00:53:20 UTC  from <app@example.test>\n"
            "client: 192.0.2.7\nhelo: app.example.test\n\n"
            "Subject: hi\r\nFrom: app@example.test\r\n");
  auto content = format_message(one + R"(, "content": "Received: x\r\n\r\nbody")" + "}");
  ASSERT_TRUE(content) << content.error();
  EXPECT_NE(content->find("\n\nReceived: x\r\n\r\nbody\n"), std::string::npos) << *content;
}

TEST(Duration, Good) {
  EXPECT_EQ(*parse_duration("90s"), 90);
  EXPECT_EQ(*parse_duration("30m"), 1800);
  EXPECT_EQ(*parse_duration("2h"), 7200);
  EXPECT_EQ(*parse_duration("1d"), 86400);
  EXPECT_EQ(*parse_duration("3600"), 3600);
  EXPECT_EQ(*parse_duration("0"), 0);
  EXPECT_EQ(*parse_duration("1h30m"), 5400);
  EXPECT_EQ(*parse_duration("1d12h"), 129600);
}

TEST(Duration, Bad) {
  for (const char* bad : {"", "h", "2x", "-5", "1.5h", " 2h", "2h ", "1h30", "2H", "m30",
                          "99999999999999999999", "9999999999999999d"}) {
    auto d = parse_duration(bad);
    EXPECT_FALSE(d) << bad << " gave " << (d ? *d : 0);
  }
  EXPECT_EQ(parse_duration("2x").error(), "not a duration: \"2x\" (units: s, m, h, d)");
}

TEST(Selector, EachKindItsBody) {
  QueueSelector ids;
  ids.ids = {"0ABCDEFGHJK00", "0ABCDEFGHJK01"};
  EXPECT_EQ(*selector_body(ids, false), R"({"ids":["0ABCDEFGHJK00","0ABCDEFGHJK01"]})");
  QueueSelector domain;
  domain.domain = "example.net";
  EXPECT_EQ(*selector_body(domain, false), R"({"domain":"example.net"})");
  QueueSelector sender;
  sender.sender = "app@example.test";
  EXPECT_EQ(*selector_body(sender, false), R"({"sender":"app@example.test"})");
  QueueSelector all;
  all.all = true;
  EXPECT_EQ(*selector_body(all, false), R"({"all":true})");
}

TEST(Selector, NothingIsAllOnlyWhereAllowed) {
  EXPECT_EQ(*selector_body({}, true), R"({"all":true})");  // flush, hold, release
  auto refused = selector_body({}, false);                 // delete, bounce
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), "say which messages: give ids, --domain, --sender or --all");
}

TEST(Selector, OneKindAtATime) {
  QueueSelector two;
  two.ids = {"0ABCDEFGHJK00"};
  two.domain = "example.net";
  EXPECT_FALSE(selector_body(two, true));
  QueueSelector all_and_sender;
  all_and_sender.all = true;
  all_and_sender.sender = "a@b.example";
  EXPECT_FALSE(selector_body(all_and_sender, true));
  QueueSelector empty_domain;
  empty_domain.domain = "";
  EXPECT_FALSE(selector_body(empty_domain, true));
}

TEST(Actions, AnswersInOneLineAndUnknownIds) {
  auto held = format_action("hold", R"({"messages": 3})");
  ASSERT_TRUE(held) << held.error();
  EXPECT_EQ(held->line, "held 3 messages");
  EXPECT_TRUE(held->unknown.empty());
  auto flushed = format_action("flush", R"({"messages": 1})");
  EXPECT_EQ(flushed->line, "flushed 1 message");
  auto released = format_action("release", R"({"messages": 0})");
  EXPECT_EQ(released->line, "released 0 messages");
  auto deleted =
      format_action("delete", R"({"messages": 2, "recipients": 5, "unknown": ["0ZZZZZZZZZZ00"]})");
  ASSERT_TRUE(deleted) << deleted.error();
  EXPECT_EQ(deleted->line, "deleted 5 recipients of 2 messages");
  EXPECT_EQ(deleted->unknown, std::vector<std::string>{"0ZZZZZZZZZZ00"});
  auto bounced = format_action("bounce", R"({"messages": 1, "recipients": 1})");
  EXPECT_EQ(bounced->line, "bounced 1 recipient of 1 message");
  EXPECT_FALSE(format_action("bounce", R"({"messages": 1})"));
}

TEST(Destinations, SuspendAndResumeAnswers) {
  EXPECT_EQ(
      *format_suspended(
          R"({"domain": "example.net", "until_unix": 1796007200, "reason": "their abuse desk asked"})"),
      "suspended example.net until 2026-11-30 02:53:20 UTC: their abuse desk asked\n");
  EXPECT_EQ(
      *format_suspended(R"({"domain": "example.net", "until_unix": 1796007200, "reason": ""})"),
      "suspended example.net until 2026-11-30 02:53:20 UTC\n");
  EXPECT_EQ(*format_resumed(R"({"domain": "example.net", "resumed": true})"),
            "resumed example.net: its waiting mail is due now\n");
  EXPECT_EQ(*format_resumed(R"({"domain": "example.net", "resumed": false})"),
            "example.net was not suspended\n");
}

TEST(Errors, TheErrorTextElseTheStatus) {
  EXPECT_EQ(answer_error(404, R"({"error": "no message 0ABCDEFGHJK09 in the queue"})"),
            "no message 0ABCDEFGHJK09 in the queue");
  EXPECT_EQ(answer_error(502, "<html>bad gateway</html>"), "ringmaild answered 502");
  EXPECT_EQ(url_encode("a-b_c.d~e f/g"), "a-b_c.d~e%20f%2Fg");
}

}  // namespace
}  // namespace ringmail::tools
