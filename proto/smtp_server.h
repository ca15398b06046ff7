// The inbound SMTP session (RFC 5321, with PIPELINING, SIZE, 8BITMIME,
// SMTPUTF8, ENHANCEDSTATUSCODES and CHUNKING). Pure protocol state: bytes in,
// reply bytes out, and a finished message handed to the caller to commit.
// No sockets, clocks or files: those come through SmtpHost.
//
// Verbs go through one table of check/proceed steps (see smtp_server.cc):
// check validates state and arguments and may answer with an error, proceed
// acts. Policy (relay, local domains) sits in the RCPT check.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/address.h"
#include "proto/data_reader.h"
#include "proto/sasl.h"
#include "proto/smtp_command.h"

namespace ringmail::proto {

enum class ListenerKind : uint8_t { kSmtp, kSubmission };

// Which envelope senders an authenticated user may use.
enum class SenderPolicy : uint8_t {
  kOwn,     // the user's own address (and user+tag@domain)
  kDomain,  // any address of the user's domain
  kAny,     // anything, including <>
};

struct SessionLimits {
  size_t message_bytes_max = 36700160;
  uint32_t rcpt_count_max = 100;
  uint32_t errors_max = 10;
  uint32_t received_headers_max = 50;
  // NOOP, RSET, VRFY and HELP beyond this many since the session's last
  // accepted message each count as an error (Postfix's
  // smtpd_junk_command_limit): a client cannot hold a session with them.
  uint32_t junk_commands_max = 100;
};

struct SessionParams {
  std::string hostname;
  SessionLimits limits;
  ListenerKind kind = ListenerKind::kSmtp;
  std::string client_literal;  // "[192.0.2.1]" or "[IPv6:2001:db8::1]"
  // A certificate is there: EHLO offers STARTTLS (until TLS is active).
  bool starttls_offered = false;
  // Users can authenticate: EHLO offers AUTH PLAIN LOGIN, over TLS only.
  bool auth_offered = false;
  // The client is in a trusted network (relay_networks): it may relay
  // without AUTH, as Postfix's mynetworks (an MTA that uses us as its
  // relayhost).
  bool trusted_relay = false;
  SenderPolicy sender_policy = SenderPolicy::kOwn;
  // Keep every line in and out for the log (SmtpServer::trace()).
  bool trace = false;
};

// The TLS a session runs over, once it does.
struct TlsInfo {
  std::string version;  // "TLSv1.3"
  std::string cipher;   // "TLS13-CHACHA20-POLY1305-SHA256"
};

struct Envelope;

// What the engine provides to a session. Calls never block.
class SmtpHost {
 public:
  virtual ~SmtpHost() = default;
  // `domain` is in lower case.
  virtual bool is_local_domain(std::string_view domain) const = 0;
  // RCPT for an address at a local domain: "" when it is taken, else the
  // reply ("550 5.1.1 ..." for an unknown address).
  virtual std::string check_local_recipient(const Address& a) const = 0;
  // RCPT for a remote address from a client that may relay (AUTH or
  // relay_networks), in the transaction `env`: "" when it is taken, else
  // the reply (the suppression list: "550 5.1.1 ...").
  virtual std::string check_relay_recipient(const Envelope& env, const Address& a) {
    (void)env;
    (void)a;
    return "";
  }
  // The domain that "<postmaster>" without a domain belongs to.
  virtual std::string_view primary_domain() const = 0;
  virtual std::string new_message_id() = 0;
  virtual int64_t now_unix() const = 0;
};

struct Envelope {
  std::string id;
  std::string client;  // client literal
  std::string helo;
  int64_t arrival_unix = 0;
  Address from;
  std::vector<Address> rcpts;
  bool smtputf8 = false;
  bool body_8bit = false;
  std::string tls;        // "TLSv1.3 TLS13-..." when received over TLS, else empty
  std::string auth_user;  // the authenticated user, else empty
  // The HTTP injection API's per-recipient `metadata`: a compact JSON
  // object, ASCII only (non-ASCII as \u escapes, so never a CR or LF);
  // empty when none. Kept in the spool, named in every log line about the
  // message's recipients.
  std::string metadata;
};

// What the spool made of a commit (a message refused before it, by the
// inbound checks or for want of a DKIM signature, gets refuse_message()).
enum class CommitResult { kOk, kTempFail, kNoSpace };

// The mailbox a local part maps to: lower case, only [a-z0-9._+-=], not
// starting with a dot. nullopt when the local part cannot be a mailbox.
std::optional<std::string> mailbox_name(std::string_view local);

// "Mon, 23 Nov 2026 10:38:31 +0000" (RFC 5322 3.3, always UTC).
std::string rfc5322_date(int64_t unix_time);

class SmtpServer {
 public:
  SmtpServer(SessionParams params, SmtpHost& host);
  SmtpServer(const SmtpServer&) = delete;
  SmtpServer& operator=(const SmtpServer&) = delete;

  // Writes the greeting. Call once, first.
  void start();

  // Consumes all of `in`. Complete commands are handled in place; what cannot
  // be handled yet (a partial line, or input that arrives while a commit is
  // pending) is copied into an internal buffer bounded by kPendingBytesMax.
  void feed(std::string_view in);

  // Replies to send, in order. The caller sends them and clears the string.
  std::string& output() { return out_; }

  // The session is over: send the output, then close the connection.
  bool closing() const { return state_ == State::kClosed; }

  // A complete message waits for durable storage; feed() buffers input until
  // commit_done() is called.
  bool awaiting_commit() const { return state_ == State::kAwaitCommit; }
  const Envelope& envelope() const { return env_; }
  // The message: Received header followed by the content with CRLF endings.
  std::string& message() { return message_; }
  // Reports the commit; writes 250 or 451/452 and resumes buffered input.
  void commit_done(CommitResult result);
  // Instead of commit_done(): the message is not taken, for a policy
  // (SPF, DMARC); `reply` is the whole reply line ("550 5.7.23 ...").
  void refuse_message(const std::string& reply);
  // While the message waits for its commit: the recipients it is stored
  // for (local ones expanded through the aliases).
  void set_recipients(std::vector<Address> rcpts) {
    if (state_ == State::kAwaitCommit) env_.rcpts = std::move(rcpts);
  }
  // Likewise the message's metadata (from its header: [events]
  // metadata_headers).
  void set_metadata(std::string metadata) {
    if (state_ == State::kAwaitCommit) env_.metadata = std::move(metadata);
  }

  // The 220 to STARTTLS is queued: send output() in clear, then hand every
  // further byte to TLS. Input after the STARTTLS line was discarded (a
  // client must not pipeline past it; RFC 3207, CVE-2011-0411).
  bool starting_tls() const { return state_ == State::kStartTls; }
  // The TLS handshake finished (after STARTTLS, or at once on an implicit
  // TLS port): the session starts over, waiting for EHLO.
  void tls_started(const TlsInfo& info);
  bool tls_active() const { return tls_ != nullptr; }

  // An AUTH exchange is complete and its credentials wait to be checked
  // (off the session: hashing is slow on purpose); feed() buffers input
  // until auth_done().
  bool awaiting_auth() const { return state_ == State::kAwaitAuth; }
  // (Empty when no AUTH exchange is going on.)
  const Credentials& auth_request() const {
    static const Credentials kNone;
    return auth_creds_ != nullptr ? *auth_creds_ : kNone;
  }
  // The verdict: 235 with `user` (as the user database spells it) now
  // authenticated, or 535 (which counts as an error). Resumes buffered input.
  void auth_done(bool ok, const std::string& user);
  const std::string& auth_user() const { return auth_user_; }

  // True while reading message content (the engine picks the data timeout).
  bool in_data() const { return state_ == State::kData || state_ == State::kBdat; }
  // Part of a command line has arrived, not all of it (or input waits
  // behind a commit or an AUTH check): the engine's deadline for the line
  // keeps running instead of starting again with each byte.
  bool mid_command() const { return skipping_line_ || (!in_data() && !pending_.empty()); }
  bool in_transaction() const { return mail_given_ || state_ != State::kCommand; }

  // "[192.0.2.1]" or "[IPv6:2001:db8::1]", as SessionParams gave it.
  const std::string& client_literal() const { return params_.client_literal; }

  // Ends the session with `line` (a 421) whatever state it is in.
  void terminate(std::string_view line) { close_with(line); }

  // The peer did not send anything in time.
  void timeout();
  // Graceful stop: an idle session gets 421 now; one in a transaction gets it
  // after the transaction ends.
  void request_shutdown();

  static constexpr size_t kPendingBytesMax = 1 << 20;

  // For the log. Each 4xx or 5xx reply to a client's command, with the
  // command as the client sent it (AUTH without its credentials, at most
  // kLoggedCommandMax bytes, control characters as '?'); the command is
  // "(end of data)" for a refused message and "(input)" for input refused
  // as a whole. Replies the host decided (AUTH's verdict, the commit, a
  // refused message) are not here: the host logs those itself. The host
  // takes the entries after each call that may add some.
  struct Refusal {
    std::string command;
    std::string reply;
  };
  std::vector<Refusal>& refusals() { return refusals_; }
  // With params.trace: every command line in ("< ...", SASL responses as
  // "< ***"); message content is not kept. (The replies are output().)
  std::vector<std::string>& trace() { return trace_; }
  static constexpr size_t kLoggedCommandMax = 200;

  // Verb handlers (public for the handler table in smtp_server.cc).
  struct Handler;

 private:
  enum class State : uint8_t {
    kCommand,
    kData,
    kBdat,
    kAwaitCommit,
    kStartTls,
    kAuthPlain,
    kAuthLoginUser,
    kAuthLoginPass,  // waiting for a 334 response line
    kAwaitAuth,
    kClosed,
  };
  bool in_auth_exchange() const {
    return state_ == State::kAuthPlain || state_ == State::kAuthLoginUser ||
           state_ == State::kAuthLoginPass;
  }

  size_t process(std::string_view in);
  void handle_line(std::string_view line);
  void reply(std::string_view line);
  void error(std::string_view line);  // counts towards errors_max
  void junk(std::string_view line);   // NOOP & co: an error past junk_commands_max
  void close_with(std::string_view line);
  void reset_transaction();
  void begin_message();
  void finish_message(const DataReader::Findings& f, bool chunked);

  // Verb steps: check_* returns false after answering with an error.
  bool check_helo(std::string_view args, bool extended);
  void do_helo(std::string_view args, bool extended);
  // Parses MAIL/RCPT arguments into path_, or answers with the error.
  bool parse_path_or_reply(std::string_view args, bool is_mail);
  bool check_mail(std::string_view args);
  void do_mail();
  // Greeted and MAIL given, or answers 503.
  bool in_mail_transaction();
  bool check_rcpt(std::string_view args);
  void do_rcpt();
  bool check_starttls(std::string_view args);
  bool check_auth(std::string_view args);
  void do_auth(std::string_view args);
  void auth_response(std::string_view line);
  // Checks a decoded credential (or answers 501) and waits for the verdict.
  void auth_decoded(SaslError e);
  bool sender_allowed(const Address& from) const;
  void resume_pending();
  bool check_data(std::string_view args);
  void do_data();
  void do_bdat(std::string_view args);
  void bdat_chunk_done();

  SessionParams params_;
  SmtpHost& host_;
  State state_ = State::kCommand;
  std::string out_;
  std::string pending_;         // input not yet handled
  bool skipping_line_ = false;  // discarding the rest of an over-long line
  bool greeted_ = false;
  bool extended_ = false;  // EHLO (not HELO)
  bool mail_given_ = false;
  bool bdat_used_ = false;
  bool shutdown_requested_ = false;
  uint32_t errors_ = 0;
  uint32_t junk_ = 0;             // NOOP, RSET, VRFY, HELP since the last accepted message
  std::unique_ptr<TlsInfo> tls_;  // once TLS is active
  // During an AUTH exchange and its check only (the password is not kept).
  std::unique_ptr<Credentials> auth_creds_;
  std::string auth_user_;
  std::string bdat_error_;  // reply to give once a rejected BDAT chunk is read
  // MAIL/RCPT arguments parsed by check, used by proceed (made for a
  // transaction: an idle session holds none).
  std::unique_ptr<PathArgs> path_;
  Envelope env_;
  std::string message_;
  std::string discard_;  // sink for BDAT chunks of a rejected transaction
  std::unique_ptr<DataReader> reader_;
  std::string_view command_;  // the command being answered (for refusals_)
  std::vector<Refusal> refusals_;
  std::vector<std::string> trace_;
  bool bdat_last_ = false;
  uint64_t bdat_chunk_bytes_ = 0;

  friend struct Handler;
};

}  // namespace ringmail::proto
