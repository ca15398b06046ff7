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

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/resolver.h"
#include "proto/smtp_client.h"
#include "tls/session.h"

namespace ringmail::engine {

// CLOCK_MONOTONIC_COARSE in seconds: what session deadlines count in.
int64_t monotonic_s();

struct OutboundMessage {
  std::string id;
  proto::Address from;
  std::vector<proto::Address> rcpts;
  std::string data;  // CRLF, not dot-stuffed
  bool smtputf8 = false;
  bool body_8bit = false;
  // Filled by the session: one per recipient.
  std::vector<proto::SmtpClient::RcptResult> results;
};

class OutboundSession {
 public:
  struct Params {
    std::string helo;            // our host name
    uint16_t port = 25;          // tests point this at a sink's port
    std::string self;            // our name as an MX, to avoid loops
    uint32_t connect_timeout_s = 30;
    uint32_t command_timeout_s = 300;
    std::shared_ptr<const tls::TlsContext> tls;  // null: no STARTTLS
  };

  // `messages` outlive the session; `done` runs once, when every message
  // has a result for every recipient.
  OutboundSession(Backend& backend, Resolver& resolver, Params params, std::string domain,
                  std::vector<OutboundMessage*> messages, std::function<void()> done);
  ~OutboundSession();
  OutboundSession(const OutboundSession&) = delete;
  OutboundSession& operator=(const OutboundSession&) = delete;

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
  void drop_connection(const std::string& why);
  void finish_rest(proto::Outcome o, const std::string& why);
  void maybe_done();

  Backend& backend_;
  Resolver& resolver_;
  Params params_;
  std::string domain_;
  std::vector<OutboundMessage*> messages_;
  size_t next_message_ = 0;  // index of the message being sent, or next to send
  std::function<void()> done_;

  std::vector<std::string> hosts_;
  size_t host_index_ = 0;
  std::string host_;
  std::vector<sockaddr_storage> addrs_;
  size_t addr_index_ = 0;
  std::string last_error_;

  int fd_ = -1;
  int closing_fd_ = -1;  // shut down, closed once no receive or send is in flight
  sockaddr_storage peer_{};
  Io connect_c_, recv_c_, send_c_;
  bool connecting_ = false;
  bool recv_armed_ = false;
  bool send_busy_ = false;
  std::string sending_;
  size_t sent_ = 0;
  std::unique_ptr<proto::SmtpClient> smtp_;
  std::unique_ptr<tls::TlsSession> tls_;
  bool used_tls_ = false;
  bool tls_verified_ = false;
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
