// The client side of an SMTP delivery session (RFC 5321), for outbound
// delivery: server replies in, commands out, per-recipient outcomes. Pure
// protocol state, like SmtpServer: the engine owns the socket, TLS, timers
// and the queue.
//
// One session talks to one server and may deliver several messages (RSET
// between them). It uses PIPELINING when offered (MAIL, every RCPT and DATA
// in one write), STARTTLS when offered and wanted (the engine runs the
// handshake, then calls tls_started() and the session says EHLO again),
// SIZE (a message larger than the server's limit is refused before MAIL),
// and 8BITMIME/SMTPUTF8 when the message needs them (a server without
// SMTPUTF8 gets no SMTPUTF8 message: permanent failure, RFC 6531 3.4).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proto/address.h"
#include "proto/outcome.h"

namespace ringmail::proto {

// One complete server reply, maybe multi-line.
struct Reply {
  int code = 0;                 // 0: malformed
  std::string text;             // the lines' text joined by "\n", enhanced code included
  std::string summary() const;  // "451 4.3.0 text" on one line, for logs and DSNs
};

// Collects reply lines from a byte stream.
class ReplyReader {
 public:
  // Consumes bytes; returns complete replies in order.
  void feed(std::string_view in, std::vector<Reply>* out);
  bool overflow() const { return overflow_; }
  static constexpr size_t kLineMax = 4096;
  static constexpr size_t kLinesMax = 256;

 private:
  std::string partial_;
  Reply current_;
  size_t lines_ = 0;
  bool overflow_ = false;
};

// What an EHLO reply offers.
struct ServerCaps {
  bool pipelining = false;
  bool starttls = false;
  bool eightbitmime = false;
  bool smtputf8 = false;
  bool chunking = false;
  bool size = false;        // SIZE announced: MAIL carries SIZE=
  uint64_t size_max = 0;    // 0: no limit given
  bool auth_plain = false;  // AUTH mechanisms offered
  bool auth_login = false;
};
ServerCaps parse_ehlo(const Reply& r);

// 2xx success, 4xx try again later, 5xx permanent; anything else (a broken
// server) is temporary.
Outcome classify(int code);

class SmtpClient {
 public:
  struct Params {
    std::string helo;          // our host name
    bool starttls = true;      // use STARTTLS when offered
    bool require_tls = false;  // without TLS, fail the session (a route may demand it)
    bool chunking = true;      // use BDAT when offered
    bool pipelining = true;    // use PIPELINING when offered (off: one command, one reply)
    // AUTH before the first message when auth_user is set (a smarthost).
    std::string auth_user;
    std::string auth_password;
    bool auth_in_clear = false;  // allow AUTH without TLS (never by default)
  };
  struct Message {
    Address from;
    std::vector<Address> rcpts;
    std::string_view data;  // the message, CRLF line endings, not dot-stuffed
    bool smtputf8 = false;
    bool body_8bit = false;
  };
  // Per-recipient result of the last message.
  using RcptResult = DeliveryResult;
  enum class State : uint8_t {
    kGreeting,      // waiting for 220
    kEhlo,          // EHLO sent
    kHelo,          // HELO sent (after EHLO was refused)
    kStartTls,      // STARTTLS sent
    kTlsHandshake,  // 220 to STARTTLS: the engine must run the handshake now
    kAuth,          // AUTH sent (and LOGIN's answers)
    kReady,         // idle: give a message or quit()
    kMail,          // envelope and DATA (pipelined or step by step)
    kData,          // content sent, waiting for the final reply
    kRset,
    kQuit,
    kDone,  // session over; see failed()
  };

  explicit SmtpClient(Params p) : params_(std::move(p)) {}

  void feed(std::string_view in);
  // Commands to send; the engine sends them and clears the string.
  std::string& output() { return out_; }
  State state() const { return state_; }

  // After kTlsHandshake: the handshake succeeded (the session repeats EHLO)
  // or failed (the engine closes; the session is over). Before the greeting:
  // the connection is TLS from its first byte (implicit TLS, RFC 8314).
  void tls_started();
  bool tls_active() const { return tls_; }

  // In kReady: start sending one message. Its bytes must stay valid until
  // message_done() is true.
  void send(const Message& m);
  // The last message's outcome: true once every recipient has a result.
  bool message_done() const { return message_done_; }
  const std::vector<RcptResult>& results() const { return results_; }

  // Pipelining across messages (as Exim does): while the reply to one
  // message's final "." is awaited (state kData, PIPELINING offered, no
  // BDAT), the next message's MAIL, RCPTs and DATA may go out at once; the
  // transaction ends with the "." whatever its reply, so the next MAIL is
  // valid either way. send_next() returns false (and sends nothing) when
  // that is not possible now, or when the message would be refused before
  // MAIL (SIZE, SMTPUTF8, 8BITMIME): give it to send() in kReady then.
  // Once the earlier message's reply arrives its results move to
  // take_finished() and the queued message becomes the current one
  // (message_done(), results()). Its bytes must stay valid likewise.
  bool can_send_next() const;
  bool send_next(const Message& m);
  // Results of messages finished while a queued one took over, oldest first.
  std::vector<std::vector<RcptResult>> take_finished() { return std::move(finished_); }

  // Ends the session. In kData (nothing queued behind) the message's reply
  // is still taken: with PIPELINING the QUIT goes right behind the ".",
  // without it once the reply is in.
  void quit();
  // The session ended without a normal QUIT (refused greeting, broken
  // reply, required TLS missing...): temp or perm, and the reply or reason.
  bool failed() const { return failed_; }
  Outcome failure() const { return failure_; }
  const std::string& failure_reason() const { return failure_reason_; }
  Cause failure_cause() const { return failure_cause_; }
  // The connection went away: whatever was not finished fails temporarily.
  // `cause`: what ended it (a timeout, a TLS failure, the peer).
  void connection_lost(std::string_view why, Cause cause = Cause::kConnect);

  const ServerCaps& caps() const { return caps_; }
  bool authenticated() const { return authenticated_; }

 private:
  void on_reply(const Reply& r);
  void fail(Outcome o, std::string reason, Cause cause = Cause::kReply);
  void send_ehlo();
  void after_ehlo();
  void begin_envelope();
  void send_next_envelope_command();
  void envelope_reply(const Reply& r);
  void send_content();
  void send_bdat();
  void auth_reply(const Reply& r);
  void finish_all(Outcome o, const std::string& reply, Cause cause = Cause::kReply);
  std::string mail_command(const Message& m) const;
  std::string local_refusal(const Message& m) const;
  void begin_message(const Message& m);    // per-message state for `m`
  void append_envelope(const Message& m);  // MAIL and every RCPT into out_
  void start_queued();

  Params params_;
  State state_ = State::kGreeting;
  ServerCaps caps_;
  ReplyReader reader_;
  std::string out_;
  bool tls_ = false;
  bool authenticated_ = false;
  int auth_step_ = 0;  // LOGIN: 0 = AUTH sent, 1 = user name sent, 2 = password sent
  bool failed_ = false;
  Outcome failure_ = Outcome::kTemp;
  std::string failure_reason_;
  Cause failure_cause_ = Cause::kReply;

  // The message in flight.
  Message msg_;
  std::vector<RcptResult> results_;
  bool message_done_ = false;
  // Envelope replies still expected, in order: 0 = MAIL, 1..n = RCPT i-1,
  // n+1 = DATA.
  size_t next_reply_ = 0;
  size_t commands_sent_ = 0;  // step-by-step mode: how many were sent
  bool mail_ok_ = false;
  size_t rcpts_ok_ = 0;
  bool bdat_ = false;  // the message goes as one BDAT LAST chunk
  // send_next(): the message whose envelope went out behind the current one.
  bool next_queued_ = false;
  bool quit_queued_ = false;  // quit() while the reply to "." is awaited
  bool quit_sent_ = false;    // ... and the QUIT is already out (PIPELINING)
  // A message (and any queued behind it) is finished: kReady, or the
  // queued QUIT goes out now (kQuit).
  void become_ready();
  Message next_msg_;
  std::vector<std::vector<RcptResult>> finished_;
};

// `data` with leading dots doubled and the terminating ".\r\n" appended
// (RFC 5321 4.5.2). A message not ending in CRLF gets one, and a lone CR
// or LF is sent as CRLF (never a bare line ending a receiver might read a
// "." line in).
std::string dot_stuff(std::string_view data);
// True when `data` has a CR or LF that is not part of a CRLF.
bool has_bare_line_ending(std::string_view data);
// `data` with every lone CR and lone LF made CRLF.
std::string crlf_only(std::string_view data);

}  // namespace ringmail::proto
