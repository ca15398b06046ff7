#include "engine/outbound.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

namespace ringmail::engine {

int64_t monotonic_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return ts.tv_sec;
}

OutboundSession::OutboundSession(Backend& backend, Resolver& resolver, Params params,
                                 std::string domain, Pull pull, Result result,
                                 std::function<void()> done)
    : backend_(backend),
      resolver_(resolver),
      params_(std::move(params)),
      domain_(std::move(domain)),
      pull_(std::move(pull)),
      result_(std::move(result)),
      done_(std::move(done)) {
  for (auto [io, on] : {std::pair{&connect_c_, &OutboundSession::on_connect},
                        std::pair{&recv_c_, &OutboundSession::on_recv},
                        std::pair{&send_c_, &OutboundSession::on_send}}) {
    io->s = this;
    io->on = on;
  }
}

OutboundSession::~OutboundSession() { *alive_ = false; }

bool OutboundSession::take_next() {
  if (pull_ended_ || aborted_) return false;
  OutboundMessage* m = pull_ ? pull_() : nullptr;
  if (m == nullptr) {
    pull_ended_ = true;
    return false;
  }
  m->results.assign(m->rcpts.size(), proto::SmtpClient::RcptResult{});
  messages_.push_back(m);
  return true;
}

void OutboundSession::settle_message(size_t i) {
  OutboundMessage* m = messages_[i];
  m->remote_host = host_;
  m->remote_addr = peer_.ss_family == AF_UNSPEC ? std::string() : ip_text(peer_);
  m->tls = tls_text_;
  m->used_tls = used_tls_;
  m->tls_verified = tls_verified_;
  if (result_) result_(m);
}

void OutboundSession::start() {
  now_s_ = monotonic_s();
  if (!take_next()) {
    maybe_done();
    return;
  }
  if (!params_.next_hop.empty()) {
    hosts_ = {params_.next_hop};  // a route: no MX lookup
    next_host();
    return;
  }
  std::weak_ptr<bool> alive = alive_;
  lookups_pending_ = true;
  resolver_.mx(domain_, [this, alive](MxAnswer a) {
    if (alive.expired() || !*alive.lock() || aborted_) return;
    lookups_pending_ = false;
    on_mx(std::move(a));
  });
}

void OutboundSession::on_mx(MxAnswer a) {
  switch (a.status) {
    case DnsStatus::kNxDomain:
      finish_rest(proto::Outcome::kPerm, "domain " + domain_ + " does not exist (DNS: NXDOMAIN)",
                  proto::Cause::kDns);
      return;
    case DnsStatus::kTempFail:
      gave_up_dns_ = true;
      finish_rest(proto::Outcome::kTemp, "MX lookup for " + domain_ + " failed for now",
                  proto::Cause::kDns);
      return;
    case DnsStatus::kNoData:
      a.records.clear();  // no MX: the domain's own address (RFC 5321 5.1)
      break;
    case DnsStatus::kOk:
      break;
  }
  const proto::MxPlan plan = proto::plan_mx(domain_, std::move(a.records), params_.self,
                                            static_cast<uint64_t>(std::time(nullptr)));
  if (plan.kind == proto::MxPlan::Kind::kNullMx) {
    finish_rest(proto::Outcome::kPerm, "domain " + domain_ + " accepts no mail (null MX, RFC 7505)",
                proto::Cause::kDns);
    return;
  }
  if (plan.kind == proto::MxPlan::Kind::kLoop) {
    finish_rest(proto::Outcome::kTemp, "the MX of " + domain_ + " is this host: mail loops back",
                proto::Cause::kOther);
    return;
  }
  hosts_ = plan.hosts;
  next_host();
}

void OutboundSession::next_host() {
  if (host_index_ >= hosts_.size()) {
    gave_up_dns_ = dns_temp_seen_ && !tried_server_;
    finish_rest(
        proto::Outcome::kTemp,
        last_error_.empty() ? "no mail server of " + domain_ + " could be reached" : last_error_,
        last_error_.empty() ? proto::Cause::kConnect : last_cause_);
    return;
  }
  host_ = hosts_[host_index_++];
  std::weak_ptr<bool> alive = alive_;
  lookups_pending_ = true;
  resolver_.addresses(host_, [this, alive](AddrAnswer a) {
    if (alive.expired() || !*alive.lock() || aborted_) return;
    lookups_pending_ = false;
    on_addrs(std::move(a));
  });
}

void OutboundSession::on_addrs(AddrAnswer a) {
  if (a.status != DnsStatus::kOk) {
    if (a.status == DnsStatus::kTempFail) dns_temp_seen_ = true;
    last_error_ = "host " + host_ + ": " + to_string(a.status);
    last_cause_ = proto::Cause::kDns;
    next_host();
    return;
  }
  addrs_ = std::move(a.addrs);
  addr_index_ = 0;
  next_addr();
}

void OutboundSession::next_addr() {
  if (next_message_ >= messages_.size()) {
    maybe_done();
    return;
  }
  if (addr_index_ >= addrs_.size()) {
    next_host();
    return;
  }
  peer_ = addrs_[addr_index_++];
  tried_server_ = true;
  // What a message sent on this connection reports of its TLS.
  used_tls_ = false;
  tls_verified_ = false;
  tls_text_.clear();
  socklen_t len;
  if (peer_.ss_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&peer_)->sin6_port = htons(params_.port);
    len = sizeof(sockaddr_in6);
  } else {
    reinterpret_cast<sockaddr_in*>(&peer_)->sin_port = htons(params_.port);
    len = sizeof(sockaddr_in);
  }
  fd_ = ::socket(peer_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    last_error_ = std::string("socket: ") + std::strerror(errno);
    last_cause_ = proto::Cause::kOther;
    next_addr();
    return;
  }
  if (!bind_source()) {
    ::close(fd_);
    fd_ = -1;
    next_addr();
    return;
  }
  connecting_ = true;
  // IPv6 goes first; when IPv4 addresses follow, a v6 path that does not
  // answer quickly (a black hole) gives way to them after 2 s instead of
  // the whole connect timeout (in the spirit of Happy Eyeballs, RFC 8305).
  uint32_t limit = params_.connect_timeout_s;
  if (peer_.ss_family == AF_INET6) {
    for (size_t i = addr_index_; i < addrs_.size(); ++i) {
      if (addrs_[i].ss_family == AF_INET) limit = std::min<uint32_t>(limit, kV6HeadStartS);
    }
  }
  deadline_s_ = monotonic_s() + limit;
  backend_.connect(fd_, reinterpret_cast<const sockaddr*>(&peer_), len, &connect_c_);
}

bool OutboundSession::bind_source() {
  const bool v6 = peer_.ss_family == AF_INET6;
  const std::string& src = v6 ? params_.source_v6 : params_.source_v4;
  if (src.empty()) return true;
  sockaddr_storage a{};
  socklen_t len;
  if (v6) {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&a);
    a6->sin6_family = AF_INET6;
    len = sizeof(sockaddr_in6);
    if (inet_pton(AF_INET6, src.c_str(), &a6->sin6_addr) != 1) len = 0;
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&a);
    a4->sin_family = AF_INET;
    len = sizeof(sockaddr_in);
    if (inet_pton(AF_INET, src.c_str(), &a4->sin_addr) != 1) len = 0;
  }
  if (len == 0 || ::bind(fd_, reinterpret_cast<const sockaddr*>(&a), len) != 0) {
    last_error_ = "cannot use the source address " + src + ": " +
                  (len == 0 ? std::string("not an address") : std::string(std::strerror(errno)));
    last_cause_ = proto::Cause::kOther;
    return false;
  }
  return true;
}

void OutboundSession::on_connect(const Event& ev) {
  connecting_ = false;
  if (aborted_) {
    backend_.close(fd_);
    fd_ = -1;
    maybe_done();
    return;
  }
  if (ev.res < 0) {
    last_error_ = "connect to " + host_ + "[" + ip_text(peer_) +
                  "]:" + std::to_string(params_.port) + ": " +
                  (ev.error() == IoError::kCanceled ? "timed out" : std::strerror(-ev.res));
    last_cause_ = proto::Cause::kConnect;
    backend_.close(fd_);
    fd_ = -1;
    next_addr();
    return;
  }
  connected_ever_ = true;
  proto::SmtpClient::Params cp;
  cp.helo = params_.helo;
  cp.starttls = params_.tls != nullptr;
  cp.require_tls = params_.require_tls;
  cp.auth_user = params_.auth_user;
  cp.auth_password = params_.auth_password;
  smtp_ = std::make_unique<proto::SmtpClient>(std::move(cp));
  tls_.reset();
  started_message_ = false;
  deadline_s_ = monotonic_s() + params_.command_timeout_s;
  recv_armed_ = true;
  backend_.recv(fd_, &recv_c_);
}

void OutboundSession::on_recv(const Event& ev) {
  if (!ev.more) recv_armed_ = false;
  if (ev.res > 0) {
    if (fd_ >= 0 && smtp_) on_bytes(std::string_view(ev.data, static_cast<size_t>(ev.res)));
    if (ev.has_buf) backend_.release(ev.buf_id);
    if (!recv_armed_ && fd_ >= 0 && smtp_ && smtp_->state() != proto::SmtpClient::State::kDone) {
      recv_armed_ = true;
      backend_.recv(fd_, &recv_c_);
    }
    maybe_done();
    return;
  }
  if (ev.has_buf) backend_.release(ev.buf_id);
  if (ev.error() == IoError::kNoBuffers && fd_ >= 0) {
    if (!recv_armed_) {
      recv_armed_ = true;
      backend_.recv(fd_, &recv_c_);
    }
    return;
  }
  if (ev.more) return;
  if (fd_ >= 0) drop_connection("connection closed by " + host_);
  maybe_done();
}

void OutboundSession::on_bytes(std::string_view in) {
  if (tls_) {
    tls_->feed(in);
    std::string plain;
    const bool was_up = tls_->handshake_done();
    const auto st = tls_->pump(&plain);
    if (!was_up && tls_->handshake_done()) {
      used_tls_ = true;
      tls_verified_ = tls_->peer_verified();
      tls_text_ = tls_->version() + "/" + tls_->cipher();
      const bool refused = params_.verify_tls && !tls_verified_;
      if (params_.tls_counters != nullptr) {
        (refused ? params_.tls_counters->failure : params_.tls_counters->success)
            .fetch_add(1, std::memory_order_relaxed);
      }
      if (refused) {
        last_error_ = "the TLS certificate of " + host_ + " could not be verified";
        last_cause_ = proto::Cause::kTls;
        drop_connection(last_error_, last_cause_);
        return;
      }
      smtp_->tls_started();
    }
    if (!plain.empty()) smtp_->feed(plain);
    if (st == tls::TlsSession::Status::kError) {
      if (!tls_->handshake_done() && params_.tls_counters != nullptr) {
        params_.tls_counters->failure.fetch_add(1, std::memory_order_relaxed);
      }
      last_cause_ = proto::Cause::kTls;
      if (tls_->certificate_failed()) {  // a verifying context stopped the handshake
        last_error_ = "the TLS certificate of " + host_ + " could not be verified (" +
                      tls_->certificate_problem() + ")";
        drop_connection(last_error_, last_cause_);
        return;
      }
      drop_connection("TLS with " + host_ + " failed: " + tls_->error(), last_cause_);
      return;
    }
  } else {
    smtp_->feed(in);
  }
  after_io();
}

void OutboundSession::after_io() {
  using State = proto::SmtpClient::State;
  deadline_s_ = monotonic_s() + params_.command_timeout_s;
  if (smtp_->state() == State::kTlsHandshake && !tls_) {
    flush();  // nothing should be pending, but keep the order
    tls_ = std::make_unique<tls::TlsSession>(params_.tls, tls::TlsSession::Role::kClient, host_);
    std::string none;
    tls_->pump(&none);  // the ClientHello
  }
  // Collect a finished message and start the next one.
  while (true) {
    if (started_message_) {
      if (!smtp_->message_done()) break;
      messages_[next_message_]->results = smtp_->results();
      started_message_ = false;
      settle_message(next_message_++);
      continue;
    }
    if (smtp_->state() != State::kReady) break;
    if (next_message_ >= messages_.size() && !take_next()) break;
    OutboundMessage* m = messages_[next_message_];
    proto::SmtpClient::Message msg;
    msg.from = m->from;
    msg.rcpts = m->rcpts;
    msg.data = m->data;
    msg.smtputf8 = m->smtputf8;
    msg.body_8bit = m->body_8bit;
    smtp_->send(msg);
    started_message_ = true;
  }
  if (next_message_ >= messages_.size() && pull_ended_ && smtp_->state() == State::kReady) {
    smtp_->quit();
  }
  if (smtp_->state() == State::kDone) {
    if (smtp_->failed()) {
      // The server refused us (greeting, EHLO, TLS required...): the next
      // address or MX may do better for the messages left.
      last_error_ = host_ + "[" + ip_text(peer_) + "]: " + smtp_->failure_reason();
      last_cause_ = smtp_->failure_cause();
      flush();
      drop_connection(last_error_, last_cause_);
      return;
    }
    flush();
    drop_connection("");
    return;
  }
  flush();
}

void OutboundSession::flush() {
  if (out_.busy() || fd_ < 0) return;
  out_.take_through(smtp_->output(), tls_.get());
  out_.start(backend_, fd_, &send_c_);
}

void OutboundSession::on_send(const Event& ev) {
  if (!out_.on_sent(ev)) {
    if (fd_ >= 0) drop_connection("send to " + host_ + ": " + std::strerror(-ev.res));
    maybe_done();
    return;
  }
  flush();
  maybe_done();
}

void OutboundSession::drop_connection(const std::string& why, proto::Cause cause) {
  if (fd_ < 0) return;
  if (smtp_ && !why.empty()) {
    smtp_->connection_lost(why, cause);
    // The message in flight takes the connection's fate.
    if (started_message_ && smtp_->message_done() && next_message_ < messages_.size()) {
      messages_[next_message_]->results = smtp_->results();
      started_message_ = false;
      settle_message(next_message_++);
    }
  }
  ::shutdown(fd_, SHUT_RDWR);  // ends the receive; closed once nothing is in flight
  closing_fd_ = fd_;
  fd_ = -1;
  out_.clear();
  if (!recv_armed_ && !out_.busy()) {
    backend_.close(closing_fd_);
    closing_fd_ = -1;
  }
  // Messages left: the next address, or the next MX.
  if (next_message_ < messages_.size() && !finished_) next_addr();
}

void OutboundSession::finish_rest(proto::Outcome o, const std::string& why, proto::Cause cause) {
  pull_ended_ = true;  // what is not taken yet stays with the caller
  if (!gave_up_) {
    gave_up_ = true;
    gave_up_outcome_ = o;
    gave_up_reason_ = why;
  }
  while (next_message_ < messages_.size()) {
    messages_[next_message_]->dns_failed = gave_up_dns_ && o == proto::Outcome::kTemp;
    for (auto& r : messages_[next_message_]->results) {
      r = proto::SmtpClient::RcptResult{o, why, cause};
    }
    settle_message(next_message_++);
  }
  maybe_done();
}

void OutboundSession::maybe_done() {
  if (closing_fd_ >= 0 && !recv_armed_ && !out_.busy()) {
    backend_.close(closing_fd_);
    closing_fd_ = -1;
  }
  if (finished_ || next_message_ < messages_.size() || fd_ >= 0 || connecting_ ||
      lookups_pending_ || closing_fd_ >= 0) {
    return;
  }
  finished_ = true;
  if (done_) done_();
}

void OutboundSession::abort() {
  if (aborted_) return;
  aborted_ = true;
  lookups_pending_ = false;  // their answers are ignored from now on
  if (connecting_) backend_.cancel(fd_, &connect_c_);
  finish_rest(proto::Outcome::kTemp, "delivery interrupted by a shutdown", proto::Cause::kOther);
  if (fd_ >= 0) drop_connection("");
  maybe_done();
}

void OutboundSession::tick(int64_t now) {
  now_s_ = now;
  if (deadline_s_ == 0 || now < deadline_s_) return;
  if (connecting_) {
    backend_.cancel(fd_, &connect_c_);  // on_connect then tries the next address
    deadline_s_ = 0;
    return;
  }
  if (fd_ >= 0) {
    deadline_s_ = 0;
    drop_connection(
        "no reply from " + host_ + " in " + std::to_string(params_.command_timeout_s) + "s",
        proto::Cause::kTimeout);
    maybe_done();
  }
}

}  // namespace ringmail::engine
