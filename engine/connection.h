// One inbound SMTP connection on a shard: glues the socket (through the
// shard's backend) to a proto::SmtpServer session and to the spool.
//
// Lifetime: owned by its Shard. It is retired (and freed by the shard's loop)
// only once no receive, send or spool commit is in flight.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "engine/backend.h"
#include "engine/mail_auth.h"
#include "engine/send_buffer.h"
#include "engine/shard.h"
#include "proto/smtp_server.h"
#include "storage/spool.h"
#include "tls/session.h"

namespace ringmail::engine {

class Connection {
 public:
  // `trusted`: the client is in relay_networks.
  ~Connection();
  Connection(Shard& shard, int fd, const config::ListenerConfig& listener,
             std::string client_literal, std::string peer, bool trusted = false);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start();
  // Graceful stop: 421 when idle, after the transaction otherwise.
  void request_shutdown();
  // Hard stop (grace period over): drop the connection.
  void abort();
  int fd() const { return fd_; }
  // The ConnectionsPerClient key this connection is counted under ("" when
  // its client is not limited: relay_networks).
  void set_limit_key(std::string k) { limit_key_ = std::move(k); }
  const std::string& limit_key() const { return limit_key_; }

 private:
  struct CommitReq : storage::Spool::Commit {
    Connection* conn = nullptr;
  };
  struct Timer : TimerEntry {
    Connection* conn = nullptr;
  };
  struct AuthC : Authenticator::Check {
    Connection* conn = nullptr;
  };
  struct SignC : DkimSignJob {
    Connection* conn = nullptr;
  };
  struct VerifyC : DkimVerifyJob {
    Connection* conn = nullptr;
  };

  // Where received bytes go: the SMTP session in clear, the ClientHello
  // reader (after STARTTLS, or from the start on an implicit TLS port), or
  // the TLS session.
  enum class TlsPhase : uint8_t { kClear, kHello, kActive };

  void on_bytes(std::string_view in);
  void read_hello();
  void pump_tls();
  void on_recv(const Event& ev);
  void on_send(const Event& ev);
  static void on_commit(storage::Spool::Commit* c, proto::CommitResult r);
  static void on_timeout(TimerEntry* t);
  static void on_greeting_due(TimerEntry* t);
  // Implicit TLS port, a client speaking plain SMTP or waiting for a 220:
  // a 421 in clear that says so, and the close.
  void implicit_tls_hint();
  static constexpr int64_t kImplicitTlsHintS = 5;
  static void on_auth(Authenticator::Check* c, bool ok);
  static void on_auth_delay(TimerEntry* t);
  // True (and the session ends with 421) when the client has used up its
  // AUTH failures ([auth] failures_max in 10 minutes, all shards).
  bool locked_out(const std::string& user);
  static void on_signed(DkimSignJob* j, bool ok);
  static void on_verified(DkimVerifyJob* j);
  // The commit pipeline of the message the session has taken (one at a
  // time; docs/architecture.md draws it). Before it is committed it is
  // signed (authenticated or relay client, keys for its domain) or, on
  // port 25, checked: SPF, DKIM signatures, DMARC, into its header fields.
  enum class Stage : uint8_t {
    kReceiving,   // no complete message waiting (DATA bytes are hashed as they come)
    kSigning,     // its DKIM signature is being made
    kChecking,    // port 25: SPF, DKIM verification, then DMARC
    kReady,       // signed, checked or nothing to do: the spool next
    kCommitting,  // appended to the spool, waiting for its fsync
  };
  // Every stage change goes through here; a transition the diagram does not
  // have is a bug (assert).
  void set_stage(Stage next);
  // Receiving -> Signing, Checking or Ready.
  void prepare();
  // Ready -> Committing.
  void commit();
  bool pipeline_busy() const {
    return stage_ == Stage::kSigning || stage_ == Stage::kChecking || stage_ == Stage::kCommitting;
  }
  bool start_signing();
  bool start_verifying();
  void verify_lookups_done();
  // One of SPF (MAIL FROM, HELO), DKIM and DMARC discovery done; at the
  // last (checks_pending_ at 0) the DMARC evaluation, the header fields
  // and the decision.
  void check_done();
  void finish_checks(const proto::dmarc::Discovered& policy);
  // Feeds the message's new bytes to its body hasher (made at the first
  // bytes of each message, when it will be signed or verified).
  void hash_progress();
  void after_io();
  // The session's refusals (and, at debug level, its protocol trace) to
  // the log.
  void log_session_events();
  // "<queue id or NOQUEUE>: refused <what> client=... helo=... from=<...>: <reply>"
  void log_refusal(const std::string& what, std::string_view reply);
  std::string queue_id() const;
  // Sets the session's timer: a whole command line must arrive within
  // command_timeout_s of the session starting to wait for it, and DATA/BDAT
  // at data_rate_min_bytes_s at least (Config). A byte alone never resets it.
  void update_deadline();
  void flush();
  void arm_recv();
  void begin_close();
  void maybe_finish();
  struct Pipeline;
  // msg_, made when missing.
  Pipeline& pipeline();
  // Drops msg_ and auth_ when nothing uses them any more.
  void release_idle_state();

  Shard& shard_;
  int fd_;
  // Small fields together (no padding between them).
  bool greeting_pending_ = false;
  bool aborting_ = false;          // abort(): the 421 is on its way
  bool deadline_in_data_ = false;  // deadline_s_ is the DATA/BDAT one
  bool auth_busy_ = false;
  bool auth_delay_pending_ = false;
  TlsPhase phase_ = TlsPhase::kClear;
  bool implicit_tls_ = false;
  bool trusted_ = false;     // relay_networks: an MTA or an application here
  bool tls_closed_ = false;  // close_notify queued
  bool recv_armed_ = false;
  Stage stage_ = Stage::kReceiving;
  bool inbound_ = false;  // an smtp (port 25) listener
  bool shut_ = false;
  bool retired_ = false;
  uint16_t listener_ = 0;   // its place in the configuration's listeners
  uint32_t messages_ = 0;   // accepted in this session (for the log)
  uint32_t refused_ = 0;    // commands and messages refused (for the log)
  int64_t started_ms_ = 0;  // Shard::mono_ms() at the accept
  size_t traced_out_ = 0;   // session_.output() bytes already traced
  std::string peer_;
  proto::SmtpServer session_;  // its client_literal(): failures are counted per address
  MemberCompletion<Connection, &Connection::on_recv> recv_c_;
  MemberCompletion<Connection, &Connection::on_send> send_c_;
  Timer timer_;
  std::string limit_key_;
  // An AUTH being checked, or its 535 held back: made for it, dropped after.
  struct AuthState {
    AuthC check;
    Timer delay;  // holds back a 535
  };
  std::unique_ptr<AuthState> auth_;
  Timer greeting_;  // [inbound] greeting_delay_s
  int64_t aborted_s_ = 0;
  int64_t deadline_s_ = 0;          // when timer_ fires (clock_s)
  uint64_t data_credit_bytes_ = 0;  // received, not yet turned into time
  std::string hello_;               // ClientHello bytes read so far
  std::unique_ptr<tls::TlsSession> tls_;
  SendBuffer out_;
  // What the commit pipeline keeps for the message in it: made at the
  // message's first bytes, dropped once no transaction is open, so an idle
  // session holds none of it (docs/performance.md).
  struct Pipeline {
    CommitReq commit;
    SignC sign;
    VerifyC verify;
    size_t verify_lookups = 0;
    size_t checks_pending = 0;
    // The From domain's DMARC policy, looked up beside SPF and DKIM.
    proto::dmarc::Discovered dmarc_policy;
    proto::spf::Request spf_request;
    proto::spf::Verdict spf;
    proto::spf::Request helo_request;  // the HELO identity too (recorded, never refused on)
    proto::spf::Verdict helo_spf;
    std::vector<DkimCheck> dkim_checks;
    std::unique_ptr<DkimBodyHasher> hasher;
    std::string hashed_id;                           // the message hasher is for
    std::chrono::steady_clock::time_point data_end;  // its final "." (for /metrics)
    // Recipients at an [[unsubscribe]] mailto address, as given at RCPT
    // (the aliases drop their +TOKEN suffix).
    std::vector<proto::Address> unsubscribe_rcpts;
    // And those that are VERP return paths of ours (engine/verp.h).
    std::vector<proto::Address> verp_rcpts;
  };
  std::unique_ptr<Pipeline> msg_;
  // Resolver callbacks check it: the connection may be gone when they run.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ringmail::engine
