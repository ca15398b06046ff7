// Scripted dialogs against the session state machine.
#include "proto/smtp_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "proto/replies.h"

namespace ringmail::proto {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

class FakeHost : public SmtpHost {
 public:
  std::string check_local_recipient(const ringmail::proto::Address& a) const override {
    return ringmail::proto::mailbox_name(a.local) ? "" : "550 5.1.1 No such user";
  }
  bool is_local_domain(std::string_view d) const override {
    return d == "example.test" || d == "other.test";
  }
  std::string_view primary_domain() const override { return "example.test"; }
  std::string new_message_id() override { return "ID" + std::to_string(++ids); }
  int64_t now_unix() const override { return 1795430311; }
  int ids = 0;
};

class Dialog : public ::testing::Test {
 protected:
  void SetUp() override { make(ListenerKind::kSmtp); }
  void make(ListenerKind kind, bool starttls = false, bool auth = false,
            SenderPolicy policy = SenderPolicy::kOwn) {
    SessionParams p;
    p.starttls_offered = starttls;
    p.auth_offered = auth;
    p.sender_policy = policy;
    p.hostname = "mx.test";
    p.kind = kind;
    p.client_literal = "[127.0.0.1]";
    p.limits.message_bytes_max = 1500;
    p.limits.rcpt_count_max = 3;
    p.limits.errors_max = 5;
    p.limits.received_headers_max = 2;
    s = std::make_unique<SmtpServer>(p, host);
    s->start();
    EXPECT_EQ(take(), "220 mx.test ESMTP ringmail\r\n");
  }
  std::string take() {
    std::string o = std::move(s->output());
    s->output().clear();
    return o;
  }
  std::string say(std::string_view in) {
    s->feed(in);
    return take();
  }
  void greet_and_envelope() {
    EXPECT_THAT(say("EHLO client.example\r\n"), HasSubstr("250 CHUNKING"));
    EXPECT_EQ(say("MAIL FROM:<a@src.example>\r\n"), "250 2.1.0 Ok\r\n");
    EXPECT_EQ(say("RCPT TO:<bob@example.test>\r\n"), "250 2.1.5 Ok\r\n");
  }
  FakeHost host;
  std::unique_ptr<SmtpServer> s;
};

TEST_F(Dialog, StarttlsNotOffered) {
  EXPECT_THAT(say("EHLO c.example\r\n"), Not(HasSubstr("STARTTLS")));
  EXPECT_EQ(say("STARTTLS\r\n"), "454 4.7.0 TLS not available\r\n");
}

// RFC 3207: the server discards what was pipelined after STARTTLS (the
// CVE-2011-0411 injection), and the client starts over with EHLO.
TEST_F(Dialog, StarttlsDiscardsPipelinedInputAndResets) {
  make(ListenerKind::kSmtp, true);
  EXPECT_THAT(say("EHLO c.example\r\n"), HasSubstr("250-STARTTLS\r\n"));
  EXPECT_EQ(say("STARTTLS x\r\n"), "501 5.5.4 Syntax: STARTTLS\r\n");
  EXPECT_EQ(say("STARTTLS\r\nMAIL FROM:<evil@src.example>\r\nRCPT TO:<bob@example.test>\r\n"),
            "220 2.0.0 Ready to start TLS\r\n");
  EXPECT_TRUE(s->starting_tls());
  EXPECT_EQ(say("more plaintext\r\n"), "");  // the engine would not even pass it
  s->tls_started(TlsInfo{"TLSv1.3", "TLS13-AES128-GCM-SHA256"});
  EXPECT_TRUE(s->tls_active());
  EXPECT_EQ(say("MAIL FROM:<a@src.example>\r\n"), "503 5.5.1 Send HELO/EHLO first\r\n");
  const std::string ehlo = say("EHLO c.example\r\n");
  EXPECT_THAT(ehlo, Not(HasSubstr("STARTTLS")));
  EXPECT_EQ(say("STARTTLS\r\n"), "503 5.5.1 TLS already active\r\n");
  EXPECT_EQ(say("MAIL FROM:<a@src.example>\r\n"), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(say("RCPT TO:<bob@example.test>\r\n"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(say("DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
  say("Subject: x\r\n\r\nhi\r\n.\r\n");
  ASSERT_TRUE(s->awaiting_commit());
  EXPECT_THAT(s->message(), HasSubstr("with ESMTPS (TLSv1.3:TLS13-AES128-GCM-SHA256) id "));
  EXPECT_EQ(s->envelope().tls, "TLSv1.3 TLS13-AES128-GCM-SHA256");
}

TEST_F(Dialog, StarttlsRefusedInsideATransaction) {
  make(ListenerKind::kSmtp, true);
  greet_and_envelope();
  EXPECT_EQ(say("STARTTLS\r\n"), "503 5.5.1 MAIL transaction in progress\r\n");
  EXPECT_FALSE(s->starting_tls());
}

// AUTH (RFC 4954): over TLS only; PLAIN and LOGIN; the verdict comes from
// the engine through auth_done().
class AuthDialog : public Dialog {
 protected:
  void start(ListenerKind kind = ListenerKind::kSubmission,
             SenderPolicy policy = SenderPolicy::kOwn) {
    make(kind, true, true, policy);
    s->tls_started(TlsInfo{"TLSv1.3", "TLS13-AES128-GCM-SHA256"});
    EXPECT_THAT(say("EHLO c.example\r\n"), HasSubstr("250-AUTH PLAIN LOGIN\r\n"));
  }
  // "\0alice@example.test\0secret"
  static constexpr const char* kPlain = "AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=";
};

TEST_F(AuthDialog, NotBeforeTls) {
  make(ListenerKind::kSubmission, true, true);
  EXPECT_THAT(say("EHLO c.example\r\n"), Not(HasSubstr("AUTH")));
  EXPECT_EQ(say(std::string("AUTH PLAIN ") + kPlain + "\r\n"),
            "538 5.7.11 Encryption required for requested authentication mechanism\r\n");
  EXPECT_EQ(say("MAIL FROM:<alice@example.test>\r\n"), "530 5.7.0 Authentication required\r\n");
}

TEST_F(AuthDialog, PlainWithInitialResponse) {
  start();
  EXPECT_EQ(say("MAIL FROM:<alice@example.test>\r\n"), "530 5.7.0 Authentication required\r\n");
  EXPECT_EQ(say(std::string("AUTH PLAIN ") + kPlain + "\r\nNOOP\r\n"), "");
  ASSERT_TRUE(s->awaiting_auth());
  EXPECT_EQ(s->auth_request().user, "alice@example.test");
  EXPECT_EQ(s->auth_request().password, "secret");
  s->auth_done(true, "alice@example.test");
  EXPECT_EQ(take(), "235 2.7.0 Authentication successful\r\n250 2.0.0 Ok\r\n");  // NOOP waited
  EXPECT_EQ(s->auth_request().password, "");                                     // not kept
  EXPECT_EQ(say("AUTH PLAIN x\r\n"), "503 5.5.1 Already authenticated\r\n");
  EXPECT_EQ(say("MAIL FROM:<alice+news@Example.TEST>\r\n"), "250 2.1.0 Ok\r\n");
  // Authenticated: any destination.
  EXPECT_EQ(say("RCPT TO:<friend@elsewhere.example>\r\n"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(say("DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
  say("Subject: x\r\n\r\nhi\r\n.\r\n");
  ASSERT_TRUE(s->awaiting_commit());
  EXPECT_THAT(s->message(), HasSubstr("with ESMTPSA (TLSv1.3:"));
  EXPECT_EQ(s->envelope().auth_user, "alice@example.test");
}

TEST_F(AuthDialog, PlainWithContinuationAndFailure) {
  start();
  EXPECT_EQ(say("AUTH PLAIN\r\n"), "334 \r\n");
  EXPECT_EQ(say(std::string(kPlain) + "\r\n"), "");
  s->auth_done(false, "");
  EXPECT_EQ(take(), "535 5.7.8 Authentication credentials invalid\r\n");
  EXPECT_EQ(s->auth_user(), "");
  EXPECT_EQ(say("MAIL FROM:<alice@example.test>\r\n"), "530 5.7.0 Authentication required\r\n");
}

TEST_F(AuthDialog, Login) {
  start();
  EXPECT_EQ(say("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
  EXPECT_EQ(say("YWxpY2VAZXhhbXBsZS50ZXN0\r\n"), "334 UGFzc3dvcmQ6\r\n");
  EXPECT_EQ(say("c2VjcmV0\r\n"), "");
  EXPECT_EQ(s->auth_request().user, "alice@example.test");
  EXPECT_EQ(s->auth_request().password, "secret");
  s->auth_done(true, "alice@example.test");
  EXPECT_EQ(take(), "235 2.7.0 Authentication successful\r\n");
  // LOGIN with the user name as initial response.
  start();
  EXPECT_EQ(say("AUTH LOGIN YWxpY2VAZXhhbXBsZS50ZXN0\r\n"), "334 UGFzc3dvcmQ6\r\n");
}

TEST_F(AuthDialog, BadInput) {
  start();
  EXPECT_EQ(say("AUTH\r\n"), "501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n");
  EXPECT_EQ(say("AUTH CRAM-MD5\r\n"), "504 5.5.4 Unrecognized authentication type\r\n");
  EXPECT_EQ(say("AUTH PLAIN !!!!\r\n"), "501 5.5.2 Cannot decode response\r\n");
  EXPECT_EQ(say("AUTH PLAIN dXNlcg==\r\n"), "501 5.5.2 Malformed authentication data\r\n");
  EXPECT_EQ(say("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
  EXPECT_EQ(say("*\r\n"), "501 5.0.0 Authentication cancelled\r\n");
  EXPECT_EQ(say("NOOP\r\n"), "250 2.0.0 Ok\r\n");  // back to commands
  // The sixth error in this session is one too many (errors_max = 5).
  EXPECT_EQ(say("AUTH PLAIN " + std::string(3000, 'A') + "\r\n"),
            "500 5.5.2 Line too long\r\n421 4.7.0 Too many errors, closing connection\r\n");
  EXPECT_FALSE(s->awaiting_auth());
}

TEST_F(AuthDialog, AuthBeforeEhloAndInsideTransaction) {
  make(ListenerKind::kSmtp, true, true);
  s->tls_started(TlsInfo{"TLSv1.3", "x"});
  EXPECT_EQ(say(std::string("AUTH PLAIN ") + kPlain + "\r\n"), "503 5.5.1 Send EHLO first\r\n");
  say("EHLO c.example\r\n");
  EXPECT_EQ(say("MAIL FROM:<a@src.example>\r\n"), "250 2.1.0 Ok\r\n");  // port 25: no AUTH needed
  EXPECT_EQ(say(std::string("AUTH PLAIN ") + kPlain + "\r\n"),
            "503 5.5.1 MAIL transaction in progress\r\n");
  // Port 25 without AUTH still refuses relaying.
  EXPECT_EQ(say("RCPT TO:<x@elsewhere.example>\r\n"), "554 5.7.1 Relay access denied\r\n");
}

TEST_F(AuthDialog, SenderPolicies) {
  start();
  say(std::string("AUTH PLAIN ") + kPlain + "\r\n");
  s->auth_done(true, "alice@example.test");
  take();
  EXPECT_EQ(say("MAIL FROM:<bob@example.test>\r\n"),
            "550 5.7.1 Sender address not allowed for alice@example.test\r\n");
  EXPECT_EQ(say("MAIL FROM:<>\r\n"),
            "550 5.7.1 Sender address not allowed for alice@example.test\r\n");
  EXPECT_EQ(say("MAIL FROM:<alice@other.test>\r\n"),
            "550 5.7.1 Sender address not allowed for alice@example.test\r\n");
  start(ListenerKind::kSubmission, SenderPolicy::kDomain);
  say(std::string("AUTH PLAIN ") + kPlain + "\r\n");
  s->auth_done(true, "alice@example.test");
  take();
  EXPECT_EQ(say("MAIL FROM:<bob@example.test>\r\n"), "250 2.1.0 Ok\r\n");
  start(ListenerKind::kSubmission, SenderPolicy::kAny);
  say(std::string("AUTH PLAIN ") + kPlain + "\r\n");
  s->auth_done(true, "alice@example.test");
  take();
  EXPECT_EQ(say("MAIL FROM:<>\r\n"), "250 2.1.0 Ok\r\n");
}

// A client in relay_networks (an MTA using us as relayhost) relays without
// AUTH; others do not.
TEST_F(Dialog, TrustedNetworkRelays) {
  SessionParams p;
  p.hostname = "mx.test";
  p.client_literal = "[127.0.0.1]";
  p.trusted_relay = true;
  s = std::make_unique<SmtpServer>(p, host);
  s->start();
  take();
  say("EHLO postfix.example\r\n");
  EXPECT_EQ(say("MAIL FROM:<app@src.example>\r\n"), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(say("RCPT TO:<someone@elsewhere.example>\r\n"), "250 2.1.5 Ok\r\n");
}

TEST_F(Dialog, EhloAdvertises) {
  EXPECT_EQ(say("EHLO c.example\r\n"),
            "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1500\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
            "250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n");
  EXPECT_EQ(say("HELO c.example\r\n"), "250 mx.test\r\n");
  EXPECT_EQ(say("EHLO\r\n"), "501 5.5.4 Syntax: EHLO hostname\r\n");
}

TEST_F(Dialog, FullTransaction) {
  greet_and_envelope();
  EXPECT_EQ(say("DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
  EXPECT_EQ(say("Subject: hi\r\n\r\n..body\r\n.\r\n"), "");
  ASSERT_TRUE(s->awaiting_commit());
  EXPECT_EQ(s->envelope().id, "ID1");
  EXPECT_EQ(s->envelope().rcpts.size(), 1u);
  EXPECT_THAT(s->message(),
              StartsWith("Received: from client.example ([127.0.0.1])\r\n\tby mx.test "
                         "(ringmail) with ESMTP id ID1\r\n\tfor <bob@example.test>; "));
  EXPECT_THAT(s->message(), HasSubstr("+0000\r\nSubject: hi\r\n\r\n.body\r\n"));
  s->commit_done(CommitResult::kOk);
  EXPECT_EQ(take(), "250 2.0.0 Ok: queued as ID1\r\n");
  EXPECT_FALSE(s->in_transaction());
}

TEST_F(Dialog, PipelinedInputWaitsForCommit) {
  s->feed(
      "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.test>\r\nDATA\r\nhello\r\n.\r\n"
      "MAIL FROM:<c@d.example>\r\nRCPT TO:<y@other.test>\r\nDATA\r\nsecond\r\n.\r\nQUIT\r\n");
  ASSERT_TRUE(s->awaiting_commit());
  std::string o = take();
  EXPECT_THAT(o, HasSubstr("250 2.1.5 Ok\r\n354 End"));
  EXPECT_THAT(o, ::testing::Not(HasSubstr("queued")));
  s->commit_done(CommitResult::kOk);
  ASSERT_TRUE(s->awaiting_commit());
  EXPECT_EQ(s->envelope().rcpts[0].to_string(), "y@other.test");
  s->commit_done(CommitResult::kNoSpace);
  EXPECT_EQ(take(),
            "250 2.0.0 Ok: queued as ID1\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with "
            "<CR><LF>.<CR><LF>\r\n452 4.3.1 Insufficient system storage\r\n221 2.0.0 Bye\r\n");
  EXPECT_TRUE(s->closing());
}

TEST_F(Dialog, SigningFailureIsATemporaryError) {
  s->feed(
      "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.test>\r\nDATA\r\nhello\r\n.\r\n");
  ASSERT_TRUE(s->awaiting_commit());
  take();
  s->refuse_message(std::string(reply::kCannotSign));
  EXPECT_EQ(take(), "451 4.7.0 Cannot DKIM-sign the message now, try again later\r\n");
  EXPECT_FALSE(s->awaiting_commit());
}

TEST_F(Dialog, CommandSplitAcrossFeeds) {
  s->feed("EH");
  s->feed("LO c");
  EXPECT_EQ(take(), "");
  s->feed("\r\nNOOP\r\n");
  EXPECT_THAT(take(), HasSubstr("250 CHUNKING\r\n250 2.0.0 Ok\r\n"));
}

TEST_F(Dialog, OrderErrors) {
  EXPECT_EQ(say("MAIL FROM:<a@b.example>\r\n"), "503 5.5.1 Send HELO/EHLO first\r\n");
  say("EHLO c\r\n");
  EXPECT_EQ(say("RCPT TO:<a@example.test>\r\n"), "503 5.5.1 Need MAIL first\r\n");
  EXPECT_EQ(say("DATA\r\n"), "503 5.5.1 Need MAIL first\r\n");
  EXPECT_EQ(say("MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(say("MAIL FROM:<a@b.example>\r\n"), "503 5.5.1 Sender already given\r\n");
  EXPECT_EQ(say("DATA\r\n"), "554 5.5.1 No valid recipients\r\n");
}

TEST_F(Dialog, SyntaxAndPolicy) {
  say("EHLO c\r\n");
  EXPECT_EQ(say("MAIL <a@b>\r\n"), "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
  EXPECT_EQ(say("MAIL FROM:<a b@c>\r\n"), "501 5.1.7 Bad sender address syntax\r\n");
  EXPECT_EQ(say("MAIL FROM:<a@b.example> RET=FULL\r\n"), "555 5.5.4 Unsupported parameter\r\n");
  EXPECT_EQ(say("MAIL FROM:<a@b.example> SIZE=1501\r\n"),
            "552 5.3.4 Message size exceeds fixed limit\r\n");
  EXPECT_EQ(say("MAIL FROM:<\xC3\xA9@b.example>\r\n"),
            "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n");
  // Five errors so far; the sixth closes (errors_max = 5).
  EXPECT_EQ(
      say("FOO\r\n"),
      "500 5.5.2 Command not recognized\r\n421 4.7.0 Too many errors, closing connection\r\n");
  EXPECT_TRUE(s->closing());
}

TEST_F(Dialog, HugeSizeAndUnadvertisedAuth) {
  say("EHLO c\r\n");
  EXPECT_EQ(say("MAIL FROM:<a@b.example> SIZE=99999999999999999999\r\n"),
            "552 5.3.4 Message size exceeds fixed limit\r\n");
  EXPECT_EQ(say("MAIL FROM:<a@b.example> AUTH=<>\r\n"), "555 5.5.4 Unsupported parameter\r\n");
  EXPECT_EQ(say("MAIL FROM:a@b.example\r\n"), "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
}

TEST_F(Dialog, RcptPolicy) {
  say("EHLO c\r\nMAIL FROM:<a@b.example> SMTPUTF8\r\n");
  EXPECT_EQ(say("RCPT TO:<x@elsewhere.example>\r\n"), "554 5.7.1 Relay access denied\r\n");
  EXPECT_EQ(say("RCPT TO:<\"a/b\"@example.test>\r\n"), "550 5.1.1 No such user\r\n");
  EXPECT_EQ(say("RCPT TO:<x@EXAMPLE.test>\r\n"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(say("RCPT TO:<postmaster>\r\n"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(say("RCPT TO:<z@other.test>\r\n"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(say("RCPT TO:<w@other.test>\r\n"), "452 4.5.3 Too many recipients\r\n");
  EXPECT_EQ(say("RCPT TO:<w@other.test> NOTIFY=NEVER\r\n"), "555 5.5.4 Unsupported parameter\r\n");
}

TEST_F(Dialog, SubmissionNeedsAuth) {
  make(ListenerKind::kSubmission);
  say("EHLO c\r\n");
  EXPECT_EQ(say("MAIL FROM:<a@b.example>\r\n"), "530 5.7.0 Authentication required\r\n");
}

TEST_F(Dialog, BareLfClosesWithoutMessage) {
  greet_and_envelope();
  say("DATA\r\n");
  EXPECT_EQ(say("x\n.\nMAIL FROM:<evil@x.example>\r\n"),
            "554 5.6.0 Bare CR or LF line ending not allowed\r\n");
  EXPECT_TRUE(s->closing());
  EXPECT_FALSE(s->awaiting_commit());
}

TEST_F(Dialog, OversizeKeepsSessionUsable) {
  greet_and_envelope();
  say("DATA\r\n");
  EXPECT_EQ(say(std::string(900, 'a') + "\r\n" + std::string(900, 'b') + "\r\n.\r\n"),
            "552 5.3.4 Message size exceeds fixed limit\r\n");
  EXPECT_FALSE(s->closing());
  greet_and_envelope();
}

TEST_F(Dialog, LongLineAndLoop) {
  greet_and_envelope();
  say("DATA\r\n");
  EXPECT_EQ(say(std::string(999, 'a') + "\r\n.\r\n"),
            "554 5.6.0 Message line longer than 1000 octets\r\n");
  greet_and_envelope();
  say("DATA\r\n");
  EXPECT_EQ(say("Received: a\r\nReceived: b\r\nReceived: c\r\n\r\nx\r\n.\r\n"),
            "554 5.4.6 Too many Received headers: mail loop\r\n");
}

TEST_F(Dialog, Bdat) {
  greet_and_envelope();
  EXPECT_EQ(say("BDAT 5\r\nab\r\n"), "");
  EXPECT_EQ(say("c"), "250 2.0.0 5 octets received\r\n");
  EXPECT_EQ(say("BDAT 3 LAST\r\nd\r\nNOOP\r\n"), "");
  ASSERT_TRUE(s->awaiting_commit());
  EXPECT_THAT(s->message(), HasSubstr("+0000\r\nab\r\ncd\r\n"));
  s->commit_done(CommitResult::kOk);
  EXPECT_EQ(take(), "250 2.0.0 Ok: queued as ID1\r\n250 2.0.0 Ok\r\n");
}

TEST_F(Dialog, BdatZeroLastAndRefusedChunkIsSkipped) {
  EXPECT_EQ(say("EHLO c\r\nBDAT 4\r\nQUITNOOP\r\n"),
            std::string("250-mx.test") +
                "\r\n250-PIPELINING\r\n250-SIZE 1500\r\n250-8BITMIME\r\n"
                "250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n"
                "503 5.5.1 Need MAIL first\r\n250 2.0.0 Ok\r\n");
  greet_and_envelope();
  EXPECT_EQ(say("BDAT 5\r\nx\r\n\r\n"), "250 2.0.0 5 octets received\r\n");
  say("BDAT 0 LAST\r\n");
  EXPECT_TRUE(s->awaiting_commit());
}

TEST_F(Dialog, DataAfterBdatRefused) {
  greet_and_envelope();
  say("BDAT 3\r\nx\r\n");
  EXPECT_EQ(say("DATA\r\n"), "503 5.5.1 DATA not allowed after BDAT\r\n");
}

TEST_F(Dialog, HttpClosed) {
  EXPECT_EQ(say("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            "500 5.5.1 This is an SMTP server, not HTTP\r\n");
  EXPECT_TRUE(s->closing());
}

TEST_F(Dialog, LongCommandLine) {
  EXPECT_EQ(say(std::string(3000, 'A')), "500 5.5.2 Line too long\r\n");
  EXPECT_EQ(say("more\r\nNOOP\r\n"), "250 2.0.0 Ok\r\n");
}

TEST_F(Dialog, ShutdownWhenIdleAndAfterTransaction) {
  greet_and_envelope();
  s->request_shutdown();
  EXPECT_FALSE(s->closing());
  s->feed("DATA\r\nx\r\n.\r\n");
  s->commit_done(CommitResult::kOk);
  EXPECT_EQ(take(),
            "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as ID1\r\n"
            "421 4.3.2 Service shutting down\r\n");
  EXPECT_TRUE(s->closing());
}

TEST_F(Dialog, Timeout) {
  s->timeout();
  EXPECT_EQ(take(), "421 4.4.2 mx.test Timeout, closing connection\r\n");
  EXPECT_TRUE(s->closing());
}

TEST_F(Dialog, SimpleVerbs) {
  EXPECT_EQ(say("NOOP\r\nRSET\r\nHELP\r\nVRFY x\r\nEXPN x\r\nAUTH PLAIN\r\nQUIT\r\nNOOP\r\n"),
            "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n214 2.0.0 See RFC 5321\r\n252 2.0.0 Cannot VRFY user, "
            "but will accept message and attempt delivery\r\n502 5.5.1 EXPN not supported\r\n"
            "502 5.5.1 Command not implemented\r\n221 2.0.0 Bye\r\n");
}

TEST(MailboxName, Mapping) {
  EXPECT_EQ(mailbox_name("Bob.Smith+tag"), "bob.smith+tag");
  EXPECT_FALSE(mailbox_name(".hidden"));
  EXPECT_FALSE(mailbox_name("a/b"));
  EXPECT_FALSE(mailbox_name(""));
}

TEST(Date, Rfc5322) { EXPECT_EQ(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000"); }

}  // namespace
}  // namespace ringmail::proto

namespace ringmail::proto {
namespace {

// Regression (issue 19, defect 6): NOOPs were unlimited, so a client could
// hold a session forever with them. Past junk_commands_max (here 100, the
// default) each NOOP/RSET/VRFY/HELP counts as an error (errors_max = 5).
TEST_F(Dialog, JunkCommandsCountAsErrorsPastTheirLimit) {
  say("EHLO c.example\r\n");
  std::string many;
  for (int i = 0; i < 100; ++i) {
    static const char* const kJunk[] = {"NOOP\r\n", "RSET\r\n", "VRFY x\r\n", "HELP\r\n"};
    many += kJunk[i % 4];
  }
  EXPECT_EQ(say(many).find("421"), std::string::npos);
  EXPECT_FALSE(s->closing());
  std::string out;
  for (int i = 0; i < 6; ++i) out += say("NOOP\r\n");
  std::string want;
  for (int i = 0; i < 6; ++i) want += "250 2.0.0 Ok\r\n";
  EXPECT_EQ(out, want + "421 4.7.0 Too many errors, closing connection\r\n");
  EXPECT_TRUE(s->closing());
}

TEST_F(Dialog, AcceptedMessageStartsTheJunkCountAgain) {
  say("EHLO c.example\r\n");
  for (int i = 0; i < 100; ++i) say("NOOP\r\n");
  greet_and_envelope();
  say("DATA\r\n");
  say("Subject: x\r\n\r\nhi\r\n.\r\n");
  ASSERT_TRUE(s->awaiting_commit());
  s->commit_done(CommitResult::kOk);
  take();
  for (int i = 0; i < 100; ++i) EXPECT_EQ(say("NOOP\r\n"), "250 2.0.0 Ok\r\n");
  EXPECT_FALSE(s->closing());
}

TEST_F(Dialog, MidCommandWhileALineIsIncomplete) {
  say("EHLO c.example\r\n");
  EXPECT_FALSE(s->mid_command());
  say("NO");
  EXPECT_TRUE(s->mid_command());
  EXPECT_EQ(say("OP\r\n"), "250 2.0.0 Ok\r\n");
  EXPECT_FALSE(s->mid_command());
  greet_and_envelope();
  say("DATA\r\n");
  say("partial line");
  EXPECT_FALSE(s->mid_command());  // DATA has its own deadline
}

}  // namespace
}  // namespace ringmail::proto

namespace ringmail::proto {
namespace {

// Regression (issue 19, defect 12): a bad HELO was answered about EHLO.
TEST_F(Dialog, HeloErrorsNameHelo) {
  EXPECT_EQ(say("HELO\r\n"), "501 5.5.4 Syntax: HELO hostname\r\n");
  EXPECT_EQ(say("EHLO\r\n"), "501 5.5.4 Syntax: EHLO hostname\r\n");
}

// For the log: every 4xx/5xx answer to a command, with the command, and
// no more (successes and host-decided replies are the host's to log).
TEST_F(Dialog, RefusalsNameTheCommandTheyAnswer) {
  greet_and_envelope();
  EXPECT_TRUE(s->refusals().empty());
  EXPECT_EQ(say("RCPT TO:<nobody@elsewhere.example>\r\n").substr(0, 3), "554");
  ASSERT_EQ(s->refusals().size(), 1u);
  EXPECT_EQ(s->refusals()[0].command, "RCPT TO:<nobody@elsewhere.example>");
  EXPECT_THAT(s->refusals()[0].reply, StartsWith("554 5.7.1"));
  s->refusals().clear();
  say("BOGUS \x01\xff\r\n");
  ASSERT_EQ(s->refusals().size(), 1u);
  EXPECT_EQ(s->refusals()[0].command, "BOGUS ??");
  EXPECT_EQ(s->refusals()[0].reply, "500 5.5.2 Command not recognized");
  s->refusals().clear();
  say("DATA\r\n");
  say(std::string(1600, 'x') + "\r\n.\r\n");  // over message_bytes_max
  ASSERT_EQ(s->refusals().size(), 1u);
  EXPECT_EQ(s->refusals()[0].command, "(end of data)");
  EXPECT_THAT(s->refusals()[0].reply, StartsWith("552 5.3.4"));
  s->refusals().clear();
  say("NOOP\r\n");
  EXPECT_TRUE(s->refusals().empty());
}

TEST_F(AuthDialog, RefusalsAndTracesLeaveCredentialsOut) {
  SessionParams p;
  p.starttls_offered = true;
  p.auth_offered = true;
  p.hostname = "mx.test";
  p.kind = ListenerKind::kSubmission;
  p.client_literal = "[127.0.0.1]";
  p.trace = true;
  s = std::make_unique<SmtpServer>(p, host);
  s->start();
  s->tls_started(TlsInfo{"TLSv1.3", "x"});
  say("EHLO c.example\r\n");
  say(std::string("AUTH PLAIN ") + kPlain + "\r\n");
  ASSERT_TRUE(s->awaiting_auth());
  s->auth_done(false, "");
  // The verdict is the host's to log (with the user tried).
  EXPECT_TRUE(s->refusals().empty());
  say("AUTH LOGIN\r\n");
  say("YWxpY2U=\r\n");  // "alice"
  say("*\r\n");
  ASSERT_EQ(s->refusals().size(), 1u);
  EXPECT_EQ(s->refusals()[0].command, "(AUTH response)");
  say("AUTH FOO c2VjcmV0\r\n");
  ASSERT_EQ(s->refusals().size(), 2u);
  EXPECT_EQ(s->refusals()[1].command, "AUTH FOO");
  std::string all;
  for (const auto& t : s->trace()) all += t + "\n";
  EXPECT_THAT(all, HasSubstr("< AUTH LOGIN\n< ***\n< ***\n< AUTH FOO\n"));
  EXPECT_THAT(all, HasSubstr("< EHLO c.example\n"));
  EXPECT_THAT(all, HasSubstr("< AUTH PLAIN\n"));
  EXPECT_THAT(all, HasSubstr("< ***\n"));
  EXPECT_THAT(all, Not(HasSubstr(kPlain)));
  EXPECT_THAT(all, Not(HasSubstr("YWxpY2U=")));
  EXPECT_THAT(all, Not(HasSubstr("c2VjcmV0")));
}

}  // namespace
}  // namespace ringmail::proto
