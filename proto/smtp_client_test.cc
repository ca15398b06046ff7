// Scripted sessions against the outbound SMTP client state machine.
#include "proto/smtp_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ringmail::proto {
namespace {

using ::testing::HasSubstr;
using State = SmtpClient::State;

const char kEhloFull[] =
    "250-mx.peer.example\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n"
    "250-SMTPUTF8\r\n250 STARTTLS\r\n";
const char kEhloChunking[] =
    "250-mx.peer.example\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE\r\n";
const char kEhloPlain[] = "250-mx.peer.example\r\n250 SIZE\r\n";  // no pipelining, no limit

class Client : public ::testing::Test {
 protected:
  void make(bool starttls = true, bool require_tls = false) {
    c = std::make_unique<SmtpClient>(SmtpClient::Params{"relay.test", starttls, require_tls});
  }
  void make(SmtpClient::Params p) { c = std::make_unique<SmtpClient>(std::move(p)); }
  std::string say(std::string_view server) {
    c->feed(server);
    std::string o = std::move(c->output());
    c->output().clear();
    return o;
  }
  SmtpClient::Message message(std::vector<std::string> rcpts) {
    SmtpClient::Message m;
    m.from = Address{"a", "src.example"};
    for (auto& r : rcpts) {
      const size_t at = r.find('@');
      m.rcpts.push_back(Address{r.substr(0, at), r.substr(at + 1)});
    }
    m.data = body;
    return m;
  }
  // A session with PIPELINING whose message to b@peer.example has had its
  // envelope accepted and its content sent: the final reply is awaited.
  void in_data_with_pipelining() {
    make(false);
    say("220 mx\r\n");
    say("250-mx\r\n250 PIPELINING\r\n");
    c->send(message({"b@peer.example"}));
    say("250 ok\r\n250 ok\r\n354 go\r\n");
  }
  std::string take() {
    std::string o = std::move(c->output());
    c->output().clear();
    return o;
  }
  std::string body = "Subject: x\r\n\r\n.hidden\r\nline\r\n";
  std::unique_ptr<SmtpClient> c;
};

TEST(ReplyReader, MultiLineAndSplit) {
  ReplyReader r;
  std::vector<Reply> out;
  r.feed("250-first\r\n250-sec", &out);
  EXPECT_TRUE(out.empty());
  r.feed("ond\r\n250 last\r\n550 5.1.1 no\r\n", &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].code, 250);
  EXPECT_EQ(out[0].text, "first\nsecond\nlast");
  EXPECT_EQ(out[1].summary(), "550 5.1.1 no");
  out.clear();
  r.feed("garbage\r\n250-a\r\n251 b\r\n", &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].code, 0);
  EXPECT_EQ(out[1].code, 0);  // code changed inside a multi-line reply
  r.feed(std::string(5000, 'x'), &out);
  EXPECT_TRUE(r.overflow());
}

TEST(Ehlo, Capabilities) {
  Reply r{250, "mx\nPIPELINING\nSIZE 10000\n8bitmime\nSMTPUTF8\nSTARTTLS\nCHUNKING\nAUTH PLAIN"};
  ServerCaps c = parse_ehlo(r);
  EXPECT_TRUE(c.pipelining && c.starttls && c.eightbitmime && c.smtputf8 && c.chunking && c.size);
  EXPECT_EQ(c.size_max, 10000u);
  EXPECT_TRUE(c.auth_plain);
  EXPECT_FALSE(c.auth_login);
  c = parse_ehlo(Reply{250, "mx.only"});
  EXPECT_FALSE(c.pipelining || c.starttls || c.size || c.auth_plain || c.auth_login);
  c = parse_ehlo(Reply{250, "mx\nAUTH=LOGIN\nAUTH"});  // the old form; a bare AUTH offers nothing
  EXPECT_TRUE(c.auth_login);
  EXPECT_FALSE(c.auth_plain);
}

TEST(DotStuff, LeadingDotsAndTerminator) {
  EXPECT_EQ(dot_stuff(".a\r\nb\r\n..c\r\n"), "..a\r\nb\r\n...c\r\n.\r\n");
  EXPECT_EQ(dot_stuff("no newline"), "no newline\r\n.\r\n");
  EXPECT_EQ(dot_stuff(""), ".\r\n");
  // Outbound smuggling (issue 19, the smuggling battery): lone CR and LF
  // are sent as CRLF, and the dot after them is stuffed.
  EXPECT_EQ(dot_stuff("a\n.\nMAIL FROM:<x@y>\r\n"), "a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n");
  EXPECT_EQ(dot_stuff("a\r.\rb"), "a\r\n..\r\nb\r\n.\r\n");
  EXPECT_EQ(dot_stuff("a\r\n.\r"), "a\r\n..\r\n.\r\n");
  EXPECT_FALSE(has_bare_line_ending("a\r\nb\r\n"));
  EXPECT_TRUE(has_bare_line_ending("a\nb"));
  EXPECT_TRUE(has_bare_line_ending("a\r"));
  EXPECT_TRUE(has_bare_line_ending("a\r\r\n"));
  EXPECT_EQ(crlf_only("a\rb\nc\r\n"), "a\r\nb\r\nc\r\n");
}

TEST_F(Client, StarttlsThenPipelinedDelivery) {
  make();
  EXPECT_EQ(say("220 mx.peer.example ESMTP\r\n"), "EHLO relay.test\r\n");
  EXPECT_EQ(say(kEhloFull), "STARTTLS\r\n");
  EXPECT_EQ(say("220 2.0.0 go ahead\r\n"), "");
  EXPECT_EQ(c->state(), State::kTlsHandshake);
  c->tls_started();
  EXPECT_EQ(take(), "EHLO relay.test\r\n");
  EXPECT_EQ(say(kEhloFull), "");  // STARTTLS is not asked for twice
  EXPECT_EQ(c->state(), State::kReady);
  EXPECT_TRUE(c->tls_active());
  c->send(message({"b@peer.example", "c@peer.example", "d@peer.example"}));
  EXPECT_EQ(take(),
            "MAIL FROM:<a@src.example> SIZE=29\r\nRCPT TO:<b@peer.example>\r\n"
            "RCPT TO:<c@peer.example>\r\nRCPT TO:<d@peer.example>\r\nDATA\r\n");
  EXPECT_EQ(say("250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n"
                "451 4.2.1 try later\r\n354 go\r\n"),
            "Subject: x\r\n\r\n..hidden\r\nline\r\n.\r\n");
  EXPECT_FALSE(c->message_done());
  EXPECT_EQ(say("250 2.0.0 queued as X\r\n"), "");
  ASSERT_TRUE(c->message_done());
  const auto& r = c->results();
  EXPECT_EQ(r[0].outcome, Outcome::kOk);
  EXPECT_EQ(r[0].reply, "250 2.0.0 queued as X");
  EXPECT_EQ(r[1].outcome, Outcome::kPerm);
  EXPECT_EQ(r[1].reply, "550 5.1.1 no such user");
  EXPECT_EQ(r[2].outcome, Outcome::kTemp);
  EXPECT_EQ(c->state(), State::kReady);
  c->quit();
  EXPECT_EQ(take(), "QUIT\r\n");
  say("221 bye\r\n");
  EXPECT_EQ(c->state(), State::kDone);
  EXPECT_FALSE(c->failed());
}

TEST_F(Client, StepByStepWithoutPipelining) {
  make(false);
  say("220 mx\r\n");
  EXPECT_EQ(say(kEhloPlain), "");
  c->send(message({"b@peer.example", "c@peer.example"}));
  EXPECT_EQ(take(), "MAIL FROM:<a@src.example> SIZE=29\r\n");
  EXPECT_EQ(say("250 ok\r\n"), "RCPT TO:<b@peer.example>\r\n");
  EXPECT_EQ(say("550 no\r\n"), "RCPT TO:<c@peer.example>\r\n");
  EXPECT_EQ(say("250 ok\r\n"), "DATA\r\n");
  EXPECT_THAT(say("354 go\r\n"), HasSubstr("\r\n.\r\n"));
  say("554 5.7.1 content refused\r\n");
  ASSERT_TRUE(c->message_done());
  EXPECT_EQ(c->results()[0].outcome, Outcome::kPerm);
  EXPECT_EQ(c->results()[0].reply, "550 no");
  EXPECT_EQ(c->results()[1].reply, "554 5.7.1 content refused");
  // A second message on the same connection.
  c->send(message({"e@peer.example"}));
  EXPECT_EQ(take(), "MAIL FROM:<a@src.example> SIZE=29\r\n");
}

// Implicit TLS (port 465): TLS before the greeting satisfies require_tls
// without STARTTLS.
TEST_F(Client, ImplicitTlsNeedsNoStarttls) {
  make(true, true);
  c->tls_started();
  EXPECT_TRUE(c->tls_active());
  EXPECT_THAT(say("220 mx\r\n"), HasSubstr("EHLO relay.test"));
  say(kEhloPlain);
  EXPECT_EQ(c->state(), SmtpClient::State::kReady);
  EXPECT_FALSE(c->failed());
}

TEST_F(Client, EveryRecipientRefusedMeansRset) {
  make(false);
  say("220 mx\r\n");
  say(kEhloFull);
  c->send(message({"b@peer.example"}));
  take();
  EXPECT_EQ(say("250 ok\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n"), "RSET\r\n");
  ASSERT_TRUE(c->message_done());
  EXPECT_EQ(c->results()[0].outcome, Outcome::kPerm);
  say("250 reset\r\n");
  EXPECT_EQ(c->state(), State::kReady);
}

TEST_F(Client, RefusedSenderFailsEveryRecipient) {
  make(false);
  say("220 mx\r\n");
  say(kEhloFull);
  c->send(message({"b@peer.example", "c@peer.example"}));
  take();
  say("451 4.7.1 greylisted\r\n503 need mail\r\n503 need mail\r\n503 need mail\r\n");
  ASSERT_TRUE(c->message_done());
  for (const auto& r : c->results()) {
    EXPECT_EQ(r.outcome, Outcome::kTemp);
    EXPECT_EQ(r.reply, "MAIL: 451 4.7.1 greylisted");
  }
}

TEST_F(Client, SizeSmtputfAndEightBitChecks) {
  make(false);
  say("220 mx\r\n");
  say(kEhloFull);  // SIZE 10000
  body.assign(20000, 'x');
  c->send(message({"b@peer.example"}));
  EXPECT_EQ(take(), "");  // refused before MAIL
  ASSERT_TRUE(c->message_done());
  EXPECT_EQ(c->results()[0].outcome, Outcome::kPerm);
  EXPECT_THAT(c->results()[0].reply, HasSubstr("552 5.3.4"));
  make(false);
  say("220 mx\r\n");
  say(kEhloPlain);
  body = "short\r\n";
  auto m = message({"b@peer.example"});
  m.smtputf8 = true;
  c->send(m);
  EXPECT_THAT(c->results()[0].reply, HasSubstr("553 5.6.7"));
  m.smtputf8 = false;
  m.body_8bit = true;
  c->send(m);
  EXPECT_THAT(c->results()[0].reply, HasSubstr("554 5.6.3"));
}

TEST_F(Client, GreetingAndEhloFailures) {
  make();
  EXPECT_EQ(say("554 5.7.1 go away\r\n"), "QUIT\r\n");
  EXPECT_TRUE(c->failed());
  EXPECT_EQ(c->failure(), Outcome::kPerm);
  EXPECT_EQ(c->failure_cause(), Cause::kReply);
  make();
  say("220 mx\r\n");
  EXPECT_EQ(say("502 what\r\n"), "HELO relay.test\r\n");  // an old server
  EXPECT_EQ(say("250 hi\r\n"), "");
  EXPECT_EQ(c->state(), State::kReady);
  make();
  say("421 4.3.2 busy\r\n");
  EXPECT_EQ(c->failure(), Outcome::kTemp);
}

TEST_F(Client, RequiredTlsMissingOrRefused) {
  make(true, true);
  say("220 mx\r\n");
  EXPECT_EQ(say(kEhloPlain), "QUIT\r\n");
  EXPECT_TRUE(c->failed());
  EXPECT_THAT(c->failure_reason(), HasSubstr("TLS is required"));
  EXPECT_EQ(c->failure_cause(), Cause::kTls);
  make(true, true);
  say("220 mx\r\n");
  say(kEhloFull);
  EXPECT_EQ(say("454 4.7.0 no tls today\r\n"), "QUIT\r\n");
  EXPECT_TRUE(c->failed());
  EXPECT_EQ(c->failure_cause(), Cause::kTls);
  // Opportunistic: a refused STARTTLS goes on in clear.
  make(true, false);
  say("220 mx\r\n");
  say(kEhloFull);
  say("454 4.7.0 no tls today\r\n");
  EXPECT_EQ(c->state(), State::kReady);
  EXPECT_FALSE(c->tls_active());
}

TEST_F(Client, ConnectionLostMidMessage) {
  make(false);
  say("220 mx\r\n");
  say(kEhloFull);
  c->send(message({"b@peer.example", "c@peer.example"}));
  take();
  say("250 ok\r\n550 no\r\n");
  c->connection_lost("reset by peer");
  ASSERT_TRUE(c->message_done());
  EXPECT_EQ(c->results()[0].outcome, Outcome::kPerm);  // its own answer stays
  EXPECT_EQ(c->results()[0].cause, Cause::kReply);
  EXPECT_EQ(c->results()[1].outcome, Outcome::kTemp);
  EXPECT_EQ(c->results()[1].cause, Cause::kConnect);
  EXPECT_THAT(c->results()[1].reply, HasSubstr("reset by peer"));
  EXPECT_TRUE(c->failed());
}

TEST_F(Client, UnsolicitedReplyFails) {
  make(false);
  say("220 mx\r\n");
  say(kEhloFull);
  say("250 surprise\r\n");
  EXPECT_TRUE(c->failed());
  EXPECT_EQ(c->failure_cause(), Cause::kOther);
}

TEST_F(Client, NullSenderAndLoneDotAfterUselessDataGo) {
  make(false);
  say("220 mx\r\n");
  say(kEhloFull);
  auto m = message({"b@peer.example"});
  m.from = Address{};
  c->send(m);
  EXPECT_THAT(take(), HasSubstr("MAIL FROM:<> SIZE="));
  // The recipient is refused but the server still says 354 to DATA.
  EXPECT_EQ(say("250 ok\r\n550 no\r\n354 go\r\n"), ".\r\n");
  say("554 no valid recipients\r\n");
  ASSERT_TRUE(c->message_done());
  EXPECT_EQ(c->results()[0].reply, "550 no");
  EXPECT_EQ(c->state(), State::kReady);
}

TEST_F(Client, ChunkingSendsTheMessageAsItIsInOneBdatLast) {
  make(false);
  say("220 mx\r\n");
  EXPECT_EQ(say(kEhloChunking), "");
  c->send(message({"b@peer.example", "c@peer.example"}));
  // Pipelined with the envelope; no dot-stuffing, no terminating dot.
  EXPECT_EQ(take(),
            "MAIL FROM:<a@src.example> SIZE=29\r\nRCPT TO:<b@peer.example>\r\n"
            "RCPT TO:<c@peer.example>\r\nBDAT 29 LAST\r\n" +
                body);
  say("250 ok\r\n250 ok\r\n550 5.1.1 no\r\n");
  EXPECT_FALSE(c->message_done());
  EXPECT_EQ(say("250 2.0.0 queued\r\n"), "");
  ASSERT_TRUE(c->message_done());
  EXPECT_EQ(c->results()[0].outcome, Outcome::kOk);
  EXPECT_EQ(c->results()[0].reply, "250 2.0.0 queued");
  EXPECT_EQ(c->results()[1].reply, "550 5.1.1 no");
  EXPECT_EQ(c->state(), State::kReady);
  // A refused chunk fails the accepted recipients and resets.
  c->send(message({"b@peer.example"}));
  take();
  EXPECT_EQ(say("250 ok\r\n250 ok\r\n452 4.3.1 disk full\r\n"), "RSET\r\n");
  EXPECT_EQ(c->results()[0].outcome, Outcome::kTemp);
  EXPECT_EQ(c->results()[0].reply, "452 4.3.1 disk full");
  say("250 ok\r\n");
  EXPECT_EQ(c->state(), State::kReady);
}

// Outbound smuggling: a message with lone CR/LF (none is stored from SMTP,
// but the client takes no chances) goes out with CRLF only under BDAT too.
TEST_F(Client, ChunkingSendsBareLineEndingsAsCrlf) {
  make(false);
  say("220 mx\r\n");
  say(kEhloChunking);
  auto m = message({"b@peer.example"});
  m.data = "Subject: s\r\n\r\nhi\n.\nMAIL FROM:<e@x.example>\r\n";
  c->send(m);
  EXPECT_THAT(
      take(),
      HasSubstr("BDAT 46 LAST\r\nSubject: s\r\n\r\nhi\r\n.\r\nMAIL FROM:<e@x.example>\r\n"));
}

TEST_F(Client, ChunkingStepByStepAndOffSwitch) {
  make(false);
  say("220 mx\r\n");
  say("250-mx\r\n250 CHUNKING\r\n");
  c->send(message({"b@peer.example"}));
  EXPECT_EQ(take(), "MAIL FROM:<a@src.example>\r\n");
  EXPECT_EQ(say("250 ok\r\n"), "RCPT TO:<b@peer.example>\r\n");
  EXPECT_EQ(say("250 ok\r\n"), "BDAT 29 LAST\r\n" + body);
  say("250 ok\r\n");
  EXPECT_EQ(c->results()[0].outcome, Outcome::kOk);
  SmtpClient::Params p{"relay.test", false, false};
  p.chunking = false;
  make(p);
  say("220 mx\r\n");
  say(kEhloChunking);
  c->send(message({"b@peer.example"}));
  EXPECT_THAT(take(), HasSubstr("\r\nDATA\r\n"));
}

// pipelining = false: a server that offers PIPELINING still gets one
// command at a time (a load tester's switch).
TEST_F(Client, PipeliningOffSwitch) {
  SmtpClient::Params p{"relay.test", false, false};
  p.pipelining = false;
  make(p);
  say("220 mx\r\n");
  say("250-mx\r\n250 PIPELINING\r\n");
  EXPECT_FALSE(c->caps().pipelining);
  c->send(message({"b@peer.example", "c@peer.example"}));
  EXPECT_EQ(take(), "MAIL FROM:<a@src.example>\r\n");
  EXPECT_EQ(say("250 ok\r\n"), "RCPT TO:<b@peer.example>\r\n");
  EXPECT_EQ(say("250 ok\r\n"), "RCPT TO:<c@peer.example>\r\n");
  EXPECT_EQ(say("250 ok\r\n"), "DATA\r\n");
  make(SmtpClient::Params{"relay.test", false, false});
  say("220 mx\r\n");
  say("250-mx\r\n250 PIPELINING\r\n");
  c->send(message({"b@peer.example"}));
  EXPECT_EQ(take(), "MAIL FROM:<a@src.example>\r\nRCPT TO:<b@peer.example>\r\nDATA\r\n");
}

// send_next(): the next message's envelope goes out with the wait for the
// last one's final reply; results come back per message, in order.
TEST_F(Client, PipelinedNextMessage) {
  make(false);
  say("220 mx\r\n");
  say("250-mx\r\n250 PIPELINING\r\n");
  EXPECT_FALSE(c->can_send_next());
  c->send(message({"b@peer.example"}));
  take();
  EXPECT_FALSE(c->can_send_next());  // the envelope is not answered yet
  EXPECT_THAT(say("250 ok\r\n250 ok\r\n354 go\r\n"), HasSubstr("\r\n.\r\n"));
  ASSERT_TRUE(c->can_send_next());
  ASSERT_TRUE(c->send_next(message({"c@peer.example", "d@peer.example"})));
  EXPECT_FALSE(c->can_send_next());  // one queued at most
  EXPECT_EQ(take(),
            "MAIL FROM:<a@src.example>\r\nRCPT TO:<c@peer.example>\r\n"
            "RCPT TO:<d@peer.example>\r\nDATA\r\n");
  // The first one is refused at the end; the second goes on regardless.
  EXPECT_THAT(say("554 5.7.1 no thanks\r\n250 ok\r\n550 5.1.1 unknown\r\n250 ok\r\n354 go\r\n"),
              HasSubstr("\r\n.\r\n"));
  auto earlier = c->take_finished();
  ASSERT_EQ(earlier.size(), 1u);
  ASSERT_EQ(earlier[0].size(), 1u);
  EXPECT_EQ(earlier[0][0].outcome, Outcome::kPerm);
  EXPECT_EQ(earlier[0][0].reply, "554 5.7.1 no thanks");
  EXPECT_FALSE(c->message_done());
  say("250 queued\r\n");
  ASSERT_TRUE(c->message_done());
  EXPECT_EQ(c->state(), State::kReady);
  EXPECT_EQ(c->results()[0].outcome, Outcome::kPerm);
  EXPECT_EQ(c->results()[1].outcome, Outcome::kOk);
  EXPECT_TRUE(c->take_finished().empty());
}

TEST_F(Client, QuitBehindTheLastDot) {
  in_data_with_pipelining();
  c->quit();
  EXPECT_EQ(take(), "QUIT\r\n");
  EXPECT_FALSE(c->can_send_next());
  EXPECT_EQ(c->state(), State::kData);
  say("250 queued\r\n");
  ASSERT_TRUE(c->message_done());
  EXPECT_EQ(c->results()[0].outcome, Outcome::kOk);
  EXPECT_EQ(c->state(), State::kQuit);
  say("221 bye\r\n");
  EXPECT_EQ(c->state(), State::kDone);
  EXPECT_FALSE(c->failed());
  // Without PIPELINING QUIT waits for the reply.
  make(false);
  say("220 mx\r\n");
  say(kEhloPlain);
  c->send(message({"b@peer.example"}));
  say("250 ok\r\n");
  say("250 ok\r\n");
  say("354 go\r\n");
  c->quit();
  EXPECT_EQ(take(), "");  // not before the reply
  EXPECT_EQ(say("250 queued\r\n"), "QUIT\r\n");
  EXPECT_EQ(c->results()[0].outcome, Outcome::kOk);
  EXPECT_EQ(c->state(), State::kQuit);
}

// Regression (found by fuzz_smtp_client in a 10-minute run, issue 19):
// quit() with the next message queued behind the "." sent QUIT at once and
// took the following replies for QUIT's, so both messages ended without
// results. QUIT now waits until the queued message is finished.
TEST_F(Client, QuitWithTheNextMessageQueuedWaitsForIt) {
  in_data_with_pipelining();
  ASSERT_TRUE(c->send_next(message({"c@peer.example"})));
  take();
  c->quit();
  EXPECT_EQ(take(), "");  // not yet: the next message's content is still to send
  EXPECT_THAT(say("250 first queued\r\n250 ok\r\n250 ok\r\n354 go\r\n"), HasSubstr("\r\n.\r\n"));
  auto earlier = c->take_finished();
  ASSERT_EQ(earlier.size(), 1u);
  EXPECT_EQ(earlier[0][0].outcome, Outcome::kOk);
  EXPECT_EQ(say("250 second queued\r\n"), "QUIT\r\n");
  ASSERT_TRUE(c->message_done());
  EXPECT_EQ(c->results()[0].outcome, Outcome::kOk);
  EXPECT_EQ(c->state(), State::kQuit);
  say("221 bye\r\n");
  EXPECT_EQ(c->state(), State::kDone);
  EXPECT_FALSE(c->failed());
  // The queued message refused at RCPT: after its RSET, the QUIT.
  in_data_with_pipelining();
  ASSERT_TRUE(c->send_next(message({"c@peer.example"})));
  c->quit();
  take();
  const std::string out =
      say("250 first queued\r\n250 ok\r\n550 5.1.1 no\r\n554 no valid recipients\r\n");
  EXPECT_THAT(out, HasSubstr("RSET\r\n"));
  EXPECT_EQ(say("250 reset\r\n"), "QUIT\r\n");
  EXPECT_EQ(c->results()[0].outcome, Outcome::kPerm);
  EXPECT_EQ(c->state(), State::kQuit);
}

TEST_F(Client, PipelinedNextFailsWithTheConnection) {
  in_data_with_pipelining();
  ASSERT_TRUE(c->send_next(message({"c@peer.example"})));
  c->connection_lost("reset");
  auto earlier = c->take_finished();
  ASSERT_EQ(earlier.size(), 1u);
  EXPECT_EQ(earlier[0][0].outcome, Outcome::kTemp);
  ASSERT_TRUE(c->message_done());
  EXPECT_EQ(c->results()[0].outcome, Outcome::kTemp);
  EXPECT_THAT(c->results()[0].reply, HasSubstr("reset"));
}

TEST_F(Client, NoPipelinedNextWithoutPipeliningOrWithBdatOrTooBig) {
  make(false);
  say("220 mx\r\n");
  say("250-mx\r\n250 SIZE 40\r\n");
  c->send(message({"b@peer.example"}));
  take();
  say("250 ok\r\n");
  say("250 ok\r\n");
  say("354 go\r\n");
  EXPECT_FALSE(c->send_next(message({"c@peer.example"})));  // no PIPELINING
  EXPECT_EQ(take(), "");
  make(false);
  say("220 mx\r\n");
  say("250-mx\r\n250-PIPELINING\r\n250 SIZE 40\r\n");
  c->send(message({"b@peer.example"}));
  say("250 ok\r\n250 ok\r\n354 go\r\n");
  body = std::string(100, 'x');
  EXPECT_FALSE(c->send_next(message({"c@peer.example"})));  // over SIZE: send() refuses it later
  EXPECT_EQ(take(), "");
  make(false);
  say("220 mx\r\n");
  say(kEhloChunking);
  c->send(message({"b@peer.example"}));
  EXPECT_FALSE(c->can_send_next());  // BDAT: one round trip a message already
}

TEST_F(Client, AuthPlainAfterStarttls) {
  SmtpClient::Params p{"relay.test", true, true};
  p.auth_user = "relay@src.example";
  p.auth_password = "s3cret";
  make(p);
  say("220 mx\r\n");
  EXPECT_EQ(say("250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"), "STARTTLS\r\n");
  say("220 go\r\n");
  c->tls_started();
  take();
  // base64("\0relay@src.example\0s3cret")
  EXPECT_EQ(say("250-mx\r\n250 AUTH PLAIN LOGIN\r\n"),
            "AUTH PLAIN AHJlbGF5QHNyYy5leGFtcGxlAHMzY3JldA==\r\n");
  EXPECT_EQ(c->state(), State::kAuth);
  EXPECT_EQ(say("235 2.7.0 ok\r\n"), "");
  EXPECT_EQ(c->state(), State::kReady);
  EXPECT_TRUE(c->authenticated());
}

TEST_F(Client, AuthLoginAndItsFailure) {
  SmtpClient::Params p{"relay.test", false, false};
  p.auth_user = "u";
  p.auth_password = "pw";
  p.auth_in_clear = true;
  make(p);
  say("220 mx\r\n");
  EXPECT_EQ(say("250-mx\r\n250 AUTH LOGIN\r\n"), "AUTH LOGIN\r\n");
  EXPECT_EQ(say("334 VXNlcm5hbWU6\r\n"), "dQ==\r\n");
  EXPECT_EQ(say("334 UGFzc3dvcmQ6\r\n"), "cHc=\r\n");
  EXPECT_EQ(say("535 5.7.8 bad credentials\r\n"), "QUIT\r\n");
  EXPECT_TRUE(c->failed());
  EXPECT_EQ(c->failure(), Outcome::kTemp);  // waits for the administrator
  EXPECT_THAT(c->failure_reason(), HasSubstr("535 5.7.8 bad credentials"));
}

TEST_F(Client, NoPasswordInClearAndNoMechanism) {
  SmtpClient::Params p{"relay.test", true, false};
  p.auth_user = "u";
  p.auth_password = "pw";
  make(p);
  say("220 mx\r\n");
  EXPECT_EQ(say("250-mx\r\n250 AUTH PLAIN\r\n"), "QUIT\r\n");  // no STARTTLS offered
  EXPECT_TRUE(c->failed());
  EXPECT_THAT(c->failure_reason(), HasSubstr("without TLS"));
  p.auth_in_clear = true;
  make(p);
  say("220 mx\r\n");
  EXPECT_EQ(say("250-mx\r\n250 AUTH CRAM-MD5\r\n"), "QUIT\r\n");
  EXPECT_THAT(c->failure_reason(), HasSubstr("neither AUTH PLAIN nor AUTH LOGIN"));
}

}  // namespace
}  // namespace ringmail::proto
