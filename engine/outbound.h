// One delivery attempt of a batch of messages to one destination domain:
// MX lookup and planning (proto/mx.h), each host's addresses (IPv6 first),
// connect with a deadline, opportunistic STARTTLS, and the SMTP client
// session (proto/smtp_client.h) for every message in turn on the same
// connection. The next address or MX is tried when a connection fails or
// the greeting is refused; what is left gets a temporary failure.
//
// Runs on one shard's thread with its backend and resolver. The queue (the
// caller) decides what to deliver when, and records the per-recipient
// outcomes.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/resolver.h"
#include "engine/send_buffer.h"
#include "proto/smtp_client.h"
#include "tls/session.h"

namespace ringmail::engine {

// CLOCK_MONOTONIC_COARSE in seconds: what session deadlines count in.
int64_t monotonic_s();

// Outbound TLS handshakes by result, for /metrics (written by the
// sessions' shard only). A handshake whose certificate a verifying route
// refuses is a failure.
struct TlsClientCounters {
  std::atomic<uint64_t> success{0}, failure{0};
};

struct OutboundMessage {
  std::string id;
  proto::Address from;
  std::vector<proto::Address> rcpts;
  std::string data;  // CRLF, not dot-stuffed
  bool smtputf8 = false;
  bool body_8bit = false;
  // Filled by the session: one per recipient, and who answered, how.
  std::vector<proto::SmtpClient::RcptResult> results;
  std::string remote_host;
  std::string remote_addr;  // the address it connected to, when it did
  std::string tls;          // "TLSv1.3/TLS13-AES128-GCM-SHA256" when used
  bool used_tls = false;
  bool tls_verified = false;
  // The attempt ended on a temporary DNS failure before any server was
  // tried (MX, or every host's addresses): the destination is not at
  // fault, so it is tried again in seconds (OutboundQueue::dns_retry).
  bool dns_failed = false;
};

// Crosses threads: made by the home shard's queue (engine/outbound_queue.h), filled by the owner,
// returned. Neither side touches it while the other has it.
struct OutboundBatch {
  uint32_t home = 0;                   // the shard whose queue made it (and gets it back)
  std::string domain;                  // lower case
  std::vector<OutboundMessage*> msgs;  // owned by the home queue
  size_t unfinished = 0;               // the owner's count of messages without results
};

class OutboundSession {
 public:
  struct Params {
    std::string helo;    // our host name
    uint16_t port = 25;  // tests point this at a sink's port
    std::string self;    // our name as an MX, to avoid loops
    uint32_t connect_timeout_s = 30;
    uint32_t command_timeout_s = 300;
    std::shared_ptr<const tls::TlsContext> tls;  // null: no STARTTLS
    bool require_tls = false;                    // no TLS: the next host, then retry later
    // And the certificate must check out: `tls` is then a verifying context
    // (a certificate failure ends its handshake; an opportunistic context
    // never verifies, so nothing would be delivered).
    bool verify_tls = false;
    // A fixed next hop (a route): this host instead of the MX records.
    std::string next_hop;
    std::string auth_user;  // AUTH (over TLS) when set
    std::string auth_password;
    // Source addresses to bind before connecting ("" : the kernel's choice).
    std::string source_v4;
    std::string source_v6;
    TlsClientCounters* tls_counters = nullptr;  // null: not counted
  };
  // The next message for this connection, or null (then the session ends).
  // A message taken stays valid until `result` has been called for it.
  using Pull = std::function<OutboundMessage*()>;
  // A message has its results (every recipient), set by the session.
  using Result = std::function<void(OutboundMessage*)>;

  // `done` runs once, when every message taken has its results and nothing
  // is in flight; the session may then be destroyed.
  OutboundSession(Backend& backend, Resolver& resolver, Params params, std::string domain,
                  Pull pull, Result result, std::function<void()> done);
  ~OutboundSession();
  OutboundSession(const OutboundSession&) = delete;
  OutboundSession& operator=(const OutboundSession&) = delete;

  // An IPv6 connect that has not completed after this long gives way to
  // the host's IPv4 addresses.
  static constexpr uint32_t kV6HeadStartS = 2;

  void start();
  // About once a second: connect and command deadlines.
  void tick(int64_t now_s);
  // Gives up at once (shutdown): what is not finished fails temporarily.
  void abort();

  // Who answered the last delivery, and how (for the log and DSNs).
  const std::string& remote_host() const { return host_; }
  bool used_tls() const { return used_tls_; }
  bool tls_verified() const { return tls_verified_; }
  // Every message has its results and nothing is in flight: the session
  // may be destroyed.
  bool finished() const { return finished_; }
  // A connection got as far as the server's greeting at least once.
  bool connected_ever() const { return connected_ever_; }
  // Why the messages were failed without a connection (DNS, unreachable):
  // set when finish_rest() ran; the same holds for more of this domain's
  // mail right now.
  bool gave_up() const { return gave_up_; }
  bool gave_up_dns() const { return gave_up_dns_; }
  proto::Outcome gave_up_outcome() const { return gave_up_outcome_; }
  const std::string& gave_up_reason() const { return gave_up_reason_; }

 private:
  struct Io final : Completion {
    OutboundSession* s = nullptr;
    void (OutboundSession::*on)(const Event&) = nullptr;
    void complete(const Event& ev) override { (s->*on)(ev); }
  };

  void on_mx(MxAnswer a);
  void next_host();
  void on_addrs(AddrAnswer a);
  void next_addr();
  void on_connect(const Event& ev);
  void on_recv(const Event& ev);
  void on_send(const Event& ev);
  void on_bytes(std::string_view in);
  void after_io();
  void flush();
  void drop_connection(const std::string& why, proto::Cause cause = proto::Cause::kConnect);
  void finish_rest(proto::Outcome o, const std::string& why, proto::Cause cause);
  void maybe_done();
  void settle_message(size_t i);
  bool take_next();
  bool bind_source();

  Backend& backend_;
  Resolver& resolver_;
  Params params_;
  std::string domain_;
  Pull pull_;
  Result result_;
  std::vector<OutboundMessage*> messages_;  // taken so far
  size_t next_message_ = 0;                 // index of the message being sent, or next to send
  bool pull_ended_ = false;                 // pull() said no more
  std::function<void()> done_;
  bool connected_ever_ = false;
  bool gave_up_ = false;
  bool gave_up_dns_ = false;  // gave up for a temporary DNS failure
  proto::Outcome gave_up_outcome_ = proto::Outcome::kTemp;
  std::string gave_up_reason_;

  std::vector<std::string> hosts_;
  size_t host_index_ = 0;
  std::string host_;
  std::vector<sockaddr_storage> addrs_;
  size_t addr_index_ = 0;
  std::string last_error_;
  proto::Cause last_cause_ = proto::Cause::kConnect;  // of last_error_

  int fd_ = -1;
  int closing_fd_ = -1;  // shut down, closed once no receive or send is in flight
  sockaddr_storage peer_{};
  Io connect_c_, recv_c_, send_c_;
  bool connecting_ = false;
  bool dns_temp_seen_ = false;  // an address lookup failed for now
  bool tried_server_ = false;   // a connection was started
  bool recv_armed_ = false;
  SendBuffer out_;
  std::unique_ptr<proto::SmtpClient> smtp_;
  std::unique_ptr<tls::TlsSession> tls_;
  bool used_tls_ = false;
  bool tls_verified_ = false;
  std::string tls_text_;  // version/cipher, once the handshake is done
  int64_t deadline_s_ = 0;
  int64_t now_s_ = 0;
  bool lookups_pending_ = false;
  bool finished_ = false;
  bool started_message_ = false;
  bool aborted_ = false;
  // Resolver callbacks check it: the session may be gone when they run.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ringmail::engine
