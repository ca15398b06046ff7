#include "engine/connection.h"

#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <chrono>

#include "engine/log.h"
#include "engine/psl.h"
#include "engine/verp.h"
#include "proto/replies.h"

namespace ringmail::engine {

namespace {
// Fields we add to a message go below our own Received field (its first),
// where an MTA's filters put theirs: the trace block stays together.
void insert_below_received(std::string* m, const std::string& fields) {
  size_t body;
  const auto header = proto::dkim::split_header(*m, &body);
  const size_t end =
      header.empty() ? 0 : static_cast<size_t>(header[0].value.end() - m->data()) + 2;
  m->insert(end, fields);
}

proto::SessionParams params_for(const config::Config& cfg, const config::ListenerConfig& l,
                                std::string client, bool have_certs, bool trusted) {
  proto::SessionParams p;
  p.hostname = cfg.hostname;
  p.limits = cfg.limits;
  p.kind = l.kind;
  p.client_literal = std::move(client);
  p.starttls_offered = have_certs && !l.implicit_tls;
  p.auth_offered = have_certs;  // AUTH needs TLS
  p.sender_policy = cfg.sender_policy;
  p.trusted_relay = trusted;
  p.trace = log_enabled(LogLevel::kDebug);
  return p;
}

const char* result_name(proto::CommitResult r) {
  switch (r) {
    case proto::CommitResult::kOk:
      return "ok";
    case proto::CommitResult::kTempFail:
      return "451 write/fsync error";
    case proto::CommitResult::kNoSpace:
      return "452 no space";
  }
  return "?";
}
}  // namespace

Connection::Connection(Shard& shard, int fd, const config::ListenerConfig& listener,
                       std::string client_literal, std::string peer, bool trusted)
    : shard_(shard),
      fd_(fd),
      implicit_tls_(listener.implicit_tls),
      trusted_(trusted),
      inbound_(listener.kind == proto::ListenerKind::kSmtp),
      peer_(std::move(peer)),
      session_(params_for(shard.config(), listener, std::move(client_literal),
                          shard.certs() != nullptr && !shard.certs()->empty(), trusted),
               shard) {
  recv_c_.owner = this;
  send_c_.owner = this;
  listener_ = static_cast<uint16_t>(&listener - shard.config().listeners.data());
  started_ms_ = shard.mono_ms();
  timer_.conn = this;
  timer_.fire = &Connection::on_timeout;
  greeting_.conn = this;
  greeting_.fire = &Connection::on_greeting_due;
}

Connection::~Connection() {
  *alive_ = false;
  if (msg_ != nullptr && msg_->hasher != nullptr) shard_.forget_hashing(msg_->hasher.get());
}

Connection::Pipeline& Connection::pipeline() {
  if (msg_ == nullptr) {
    msg_ = std::make_unique<Pipeline>();
    msg_->commit.conn = this;
    msg_->commit.done = &Connection::on_commit;
  }
  return *msg_;
}

void Connection::release_idle_state() {
  if (auth_ != nullptr && !auth_busy_ && !auth_delay_pending_) auth_.reset();
  // Between transactions (and not while one of a session that is shutting
  // down waits in the pipeline).
  if (msg_ != nullptr && stage_ == Stage::kReceiving && !session_.in_transaction()) {
    if (msg_->hasher != nullptr) shard_.forget_hashing(msg_->hasher.get());
    msg_.reset();
  }
}

void Connection::start() {
  log_line("connect client=" + peer_ + " listener=" + shard_.listener_name(listener_) +
           (trusted_ ? " relay_networks" : ""));
  const uint32_t delay = shard_.config().greeting_delay_s;
  if (implicit_tls_) {
    phase_ = TlsPhase::kHello;  // the greeting goes out once TLS is up
    // A TLS client speaks first, at once; one still silent after a few
    // seconds waits for a 220 in clear (STARTTLS on the wrong port).
    // (Before the handshake's own timeout.)
    greeting_pending_ = true;
    const int64_t half = std::max<int64_t>(1, shard_.config().command_timeout_s / 2);
    shard_.wheel().schedule(&greeting_,
                            shard_.clock_s() + std::min<int64_t>(kImplicitTlsHintS, half));
  } else if (inbound_ && delay > 0 && !trusted_) {
    greeting_pending_ = true;  // on_greeting_due() greets
    shard_.wheel().schedule(&greeting_, shard_.clock_s() + delay);
  } else {
    session_.start();
  }
  arm_recv();
  after_io();
}

void Connection::on_bytes(std::string_view in) {
  switch (phase_) {
    case TlsPhase::kClear:
      if (greeting_pending_) {
        // RFC 5321 4.3.1: the client waits for the greeting. One that
        // talks first is not an MTA.
        greeting_pending_ = false;
        shard_.wheel().cancel(&greeting_);
        const std::string reply = proto::reply::early_talker(shard_.config().hostname);
        log_refusal("(talked before the greeting)", reply);
        session_.terminate(reply);
        break;
      }
      session_.feed(in);
      hash_progress();
      break;
    case TlsPhase::kHello:
      hello_.append(in);
      read_hello();
      break;
    case TlsPhase::kActive:
      tls_->feed(in);
      pump_tls();
      break;
  }
}

namespace {
// The first bytes of a plain SMTP client: a command a client sends first.
bool looks_like_smtp(std::string_view in) {
  for (std::string_view verb :
       {"EHLO", "HELO", "STARTTLS", "QUIT", "NOOP", "MAIL", "AUTH", "RSET"}) {
    if (in.size() >= verb.size() && proto::iequals(in.substr(0, verb.size()), verb)) return true;
  }
  return false;
}
}  // namespace

void Connection::read_hello() {
  tls::ClientHelloInfo info;
  switch (tls::parse_client_hello(hello_, &info)) {
    case tls::HelloStatus::kNeedMore:
      return;
    case tls::HelloStatus::kNotTls:
      if (implicit_tls_ && tls_ == nullptr && looks_like_smtp(hello_)) {
        // Plain SMTP on the implicit TLS port: say so in its language
        // (anything else gets nothing in clear).
        log_line("tls client=" + peer_ + ": plain text on the implicit TLS port, told so");
        std::string().swap(hello_);
        implicit_tls_hint();
        return;
      }
      log_line("tls client=" + peer_ + ": not a TLS ClientHello, closing");
      begin_close();
      return;
    case tls::HelloStatus::kOk:
      break;
  }
  auto ctx = shard_.certs() ? shard_.certs()->pick(info, shard_.config().hostname) : nullptr;
  if (!ctx) {
    begin_close();
    return;
  }
  tls_ = std::make_unique<tls::TlsSession>(std::move(ctx));
  if (info.prefers_chacha) tls_->prefer_chacha();
  phase_ = TlsPhase::kActive;
  tls_->feed(hello_);
  std::string().swap(hello_);
  pump_tls();
}

void Connection::pump_tls() {
  const bool was_up = tls_->handshake_done();
  std::string plain;
  const tls::TlsSession::Status st = tls_->pump(&plain);
  if (!was_up && tls_->handshake_done()) {
    shard_.counters().tls_handshakes.fetch_add(1, std::memory_order_relaxed);
    session_.tls_started(proto::TlsInfo{tls_->version(), tls_->cipher()});
    if (implicit_tls_) session_.start();
  }
  if (!plain.empty()) {
    session_.feed(plain);
    hash_progress();
  }
  if (st == tls::TlsSession::Status::kError) {
    log_line("tls client=" + peer_ + ": " + (tls_->handshake_done() ? "" : "handshake ") +
             "failed: " + tls_->error());
    begin_close();
  } else if (st == tls::TlsSession::Status::kClosed) {
    begin_close();
  }
}

void Connection::arm_recv() {
  recv_armed_ = true;
  shard_.backend().recv(fd_, &recv_c_);
}

void Connection::on_recv(const Event& ev) {
  if (!ev.more) recv_armed_ = false;
  if (ev.res > 0) {
    data_credit_bytes_ += static_cast<uint64_t>(ev.res);
    if (!shut_) on_bytes(std::string_view(ev.data, static_cast<size_t>(ev.res)));
    if (ev.has_buf) shard_.backend().release(ev.buf_id);
    after_io();
    if (!recv_armed_ && !shut_) arm_recv();
    maybe_finish();
    return;
  }
  if (ev.has_buf) shard_.backend().release(ev.buf_id);
  if (ev.error() == IoError::kNoBuffers && !shut_) {
    // The shard's receive buffers ran out for a moment; they are returned as
    // soon as each completion is handled, so re-arming is enough.
    if (!recv_armed_) arm_recv();
    return;
  }
  if (ev.more) return;
  // End of stream or error: the peer is gone.
  begin_close();
}

std::string Connection::queue_id() const {
  const std::string& id = session_.envelope().id;
  return id.empty() ? std::string("NOQUEUE") : id;
}

void Connection::log_refusal(const std::string& what, std::string_view reply) {
  ++refused_;
  const proto::Envelope& env = session_.envelope();
  // The client's address right after the fixed words, before anything the
  // client chose (a fail2ban filter anchors on it), the reply last.
  std::string line = queue_id() + ": refused client=" + peer_;
  if (!env.helo.empty()) line += " helo=" + env.helo;
  if (!session_.auth_user().empty()) line += " auth=" + log_safe(session_.auth_user());
  if (session_.in_transaction()) line += " from=<" + log_safe(env.from.to_string()) + ">";
  line += ": " + what + ": ";
  line += reply;
  log_line(line, LogLevel::kNotice);
}

void Connection::log_session_events() {
  for (const auto& r : session_.refusals()) {
    if (!r.reply.empty()) log_refusal(r.command, r.reply);
  }
  session_.refusals().clear();
  if (!session_.trace().empty() || traced_out_ < session_.output().size()) {
    const std::string who = queue_id() + ": client=" + peer_;
    for (const auto& t : session_.trace()) log_line(who + " " + t, LogLevel::kDebug);
    session_.trace().clear();
    if (log_enabled(LogLevel::kDebug)) {
      std::string_view out = session_.output();
      if (traced_out_ > out.size()) traced_out_ = 0;
      out.remove_prefix(traced_out_);
      traced_out_ = session_.output().size();
      while (!out.empty()) {
        const size_t end = out.find("\r\n");
        const std::string_view reply = out.substr(0, end);
        log_line(who + " > " + std::string(reply), LogLevel::kDebug);
        out.remove_prefix(end == std::string_view::npos ? out.size() : end + 2);
      }
    }
  }
}

void Connection::after_io() {
  log_session_events();
  if (session_.awaiting_auth() && !auth_busy_ && !auth_delay_pending_ && !shut_) {
    if (locked_out(session_.auth_request().user)) {
      // The password is not even looked at: a locked-out client learns
      // nothing from an answer, right password or wrong.
    } else {
      if (auth_ == nullptr) {
        auth_ = std::make_unique<AuthState>();
        auth_->check.conn = this;
        auth_->check.on_result = &Connection::on_auth;
        auth_->delay.conn = this;
        auth_->delay.fire = &Connection::on_auth_delay;
      }
      auth_busy_ = true;
      shard_.authenticator().start(&auth_->check, session_.auth_request(), shard_.clock_s());
    }
  }
  if (session_.awaiting_commit() && stage_ == Stage::kReceiving) prepare();
  if (session_.awaiting_commit() && stage_ == Stage::kReady) commit();
  if (session_.starting_tls() && phase_ == TlsPhase::kClear) {
    // The 220 goes out in clear (flush below); every later byte is TLS.
    phase_ = TlsPhase::kHello;
  }
  if (session_.closing() && phase_ == TlsPhase::kActive && tls_->handshake_done() && !tls_closed_) {
    if (!session_.output().empty()) tls_->write(session_.output());
    session_.output().clear();
    traced_out_ = 0;
    tls_->close();
    tls_closed_ = true;
  }
  flush();
  if (session_.closing() && out_.idle() && session_.output().empty() &&
      (phase_ != TlsPhase::kActive || tls_->output().empty())) {
    begin_close();
  }
  if (!shut_) update_deadline();
  release_idle_state();
}

void Connection::update_deadline() {
  const config::Config& cfg = shard_.config();
  const int64_t now = shard_.clock_s();
  if (session_.in_data()) {
    if (!deadline_in_data_) {
      deadline_in_data_ = true;
      deadline_s_ = now + cfg.data_timeout_s;
      data_credit_bytes_ = 0;
    }
    // Each byte buys 1/data_rate_min_bytes_s seconds, up to data_timeout_s
    // ahead: a client trickling below the rate runs out of time.
    const uint64_t gained_s = data_credit_bytes_ / cfg.data_rate_min_bytes_s;
    data_credit_bytes_ %= cfg.data_rate_min_bytes_s;
    deadline_s_ =
        std::min<int64_t>(now + cfg.data_timeout_s, deadline_s_ + static_cast<int64_t>(gained_s));
  } else {
    deadline_in_data_ = false;
    data_credit_bytes_ = 0;
    // A new deadline only when the session waits for a whole new command:
    // the bytes of one line (or of a TLS handshake) do not each buy
    // command_timeout_s more.
    const bool mid = session_.mid_command() || phase_ == TlsPhase::kHello ||
                     (phase_ == TlsPhase::kActive && !tls_->handshake_done());
    if (!mid || deadline_s_ == 0) deadline_s_ = now + cfg.command_timeout_s;
  }
  // The wheel has one-second slots: +1 so a timeout never fires early.
  shard_.wheel().schedule(&timer_, deadline_s_ + 1);
}

void Connection::flush() {
  if (out_.busy() || shut_) return;
  if (out_.empty()) {
    if (phase_ == TlsPhase::kActive) {
      // Replies are encrypted once the handshake is done; until then only
      // the handshake's own records go out.
      if (tls_->handshake_done() && !session_.output().empty()) {
        if (!tls_->write(session_.output())) {
          begin_close();
          return;
        }
        session_.output().clear();
        traced_out_ = 0;
      }
      if (tls_->output().empty()) return;
      out_.take(tls_->output());
    } else {
      if (session_.output().empty()) return;
      out_.take(session_.output());
      traced_out_ = 0;
    }
  }
  out_.start(shard_.backend(), fd_, &send_c_);
}

void Connection::on_send(const Event& ev) {
  if (!out_.on_sent(ev)) {
    begin_close();
    return;
  }
  after_io();
  maybe_finish();
}

void Connection::on_commit(storage::Spool::Commit* c, proto::CommitResult r) {
  Connection* self = static_cast<CommitReq*>(c)->conn;
  Shard& shard = self->shard_;
  self->set_stage(Stage::kReceiving);
  const proto::Envelope& env = self->session_.envelope();
  std::string line = env.id + ": queued";
  if (r != proto::CommitResult::kOk) {
    line = env.id + ": not queued (" + result_name(r) + ")";
    shard.counters().commit_failures.fetch_add(1, std::memory_order_relaxed);
    ++self->refused_;
  } else {
    ++self->messages_;
  }
  line += " client=" + self->peer_ + " helo=" + env.helo +
          (env.tls.empty() ? std::string() : " tls=" + env.tls) +
          (env.auth_user.empty() ? std::string() : " auth=" + env.auth_user) + " from=<" +
          env.from.to_string() + "> rcpts=" + std::to_string(env.rcpts.size()) +
          " bytes=" + std::to_string(self->session_.message().size());
  log_line(line, r == proto::CommitResult::kOk ? LogLevel::kInfo : LogLevel::kError);
  if (r == proto::CommitResult::kOk) {
    shard.counters().messages_queued.fetch_add(1, std::memory_order_relaxed);
    shard.counters().data_to_reply_s.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - self->msg_->data_end)
            .count());
    if (Events* events = shard.events()) {
      // RFC 3848's names for the protocol.
      const std::string protocol =
          std::string("ESMTP") + (env.tls.empty() ? "" : "S") + (env.auth_user.empty() ? "" : "A");
      Events::Detail d;
      d.protocol = protocol;
      d.size = self->session_.message().size();
      for (size_t i = 0; i < env.rcpts.size(); ++i) {
        events->record(Events::Type::kReception, env, i, d, shard.clock_s());
      }
    }
    shard.read_report(env, self->session_.message());
    if (!self->msg_->unsubscribe_rcpts.empty()) {
      unsubscribe_by_mail(shard, env.id, self->msg_->unsubscribe_rcpts, self->session_.message());
    }
    if (!self->msg_->verp_rcpts.empty()) {
      read_verp_bounces(shard, env.id, self->msg_->verp_rcpts, self->session_.message());
    }
    auto* job = new DeliveryJob();
    job->rec.env = env;
    job->rec.message = std::move(self->session_.message());
    job->rec.segment = self->msg_->commit.segment;
    job->rec.offset = self->msg_->commit.offset;
    job->rec.length = self->msg_->commit.length;
    shard.deliver(job);
  }
  self->session_.commit_done(r);
  self->after_io();
  self->maybe_finish();
}

void Connection::hash_progress() {
  if (!session_.in_data() && !session_.awaiting_commit()) return;
  const proto::Envelope& env = session_.envelope();
  pipeline();
  if (msg_->hashed_id != env.id) {
    msg_->hashed_id = env.id;
    if (msg_->hasher != nullptr) shard_.forget_hashing(msg_->hasher.get());
    msg_->hasher.reset();
    const bool ours = !env.auth_user.empty() || trusted_;
    const bool sign = ours && shard_.dkim_keys() != nullptr && shard_.dkim_keys()->size() > 0;
    const bool verify = inbound_ && !ours;
    if (sign || verify) {
      msg_->hasher = std::make_unique<DkimBodyHasher>(sign, verify, dkim_batching(),
                                                      shard_.config().dkim_sha256);
    }
  }
  if (msg_->hasher == nullptr || msg_->hasher->finished()) return;
  msg_->hasher->update(session_.message());
  shard_.queue_hashing(msg_->hasher.get());
}

void Connection::set_stage(Stage next) {
  // The pipeline's transitions, all of them (docs/architecture.md).
  [[maybe_unused]] const bool allowed = [&] {
    switch (stage_) {
      case Stage::kReceiving:
        return next == Stage::kSigning || next == Stage::kChecking || next == Stage::kReady;
      case Stage::kSigning:   // signed, or refused (signing failed)
      case Stage::kChecking:  // taken, or refused (SPF, DMARC)
        return next == Stage::kReady || next == Stage::kReceiving;
      case Stage::kReady:
        return next == Stage::kCommitting;
      case Stage::kCommitting:
        return next == Stage::kReceiving;
    }
    return false;
  }();
  assert(allowed);
  stage_ = next;
}

void Connection::prepare() {
  msg_->data_end = std::chrono::steady_clock::now();
  hash_progress();
  if (msg_->hasher != nullptr) {
    shard_.forget_hashing(msg_->hasher.get());
    msg_->hasher->finish(session_.message());  // before any field is added or removed
  }
  // Each of these sets its stage before it starts (its result may come at
  // once, and move the message on from inside).
  if (start_signing() || start_verifying()) return;
  set_stage(Stage::kReady);
}

void Connection::commit() {
  set_stage(Stage::kCommitting);
  msg_->unsubscribe_rcpts = unsubscribe_recipients(shard_.config(), session_.envelope().rcpts);
  msg_->verp_rcpts = verp_recipients(shard_.config(), session_.envelope().rcpts);
  if (!shard_.config().events_metadata_headers.empty()) {
    session_.set_metadata(
        header_metadata(session_.message(), shard_.config().events_metadata_headers));
  }
  session_.set_recipients(shard_.policy().expand_recipients(session_.envelope()));
  msg_->commit.env = &session_.envelope();
  msg_->commit.message = session_.message();
  shard_.commit(&msg_->commit);
}

bool Connection::start_verifying() {
  const proto::Envelope& env = session_.envelope();
  if (!inbound_ || !env.auth_user.empty() || trusted_) return false;
  std::string& m = session_.message();
  remove_forged_results(&m, shard_.config().hostname);
  set_stage(Stage::kChecking);
  // SPF of MAIL FROM and of HELO, DKIM and the From domain's DMARC policy,
  // all at once (none needs another's answer); then the DMARC evaluation.
  msg_->checks_pending = 4;
  msg_->dmarc_policy = proto::dmarc::Discovered{};
  {
    size_t body;
    std::string from;
    if (proto::dmarc::from_domain(proto::dkim::split_header(m, &body), &from)) {
      run_dmarc_discovery(shard_.resolver(), from, alive_, [this](proto::dmarc::Discovered d) {
        msg_->dmarc_policy = std::move(d);
        check_done();
      });
    } else {
      check_done();  // evaluated as permerror (no usable From)
    }
  }
  // SPF of the MAIL FROM identity (HELO's for <>), through the resolver.
  std::string ip = session_.client_literal().substr(1, session_.client_literal().size() - 2);
  if (ip.rfind("IPv6:", 0) == 0) ip.erase(0, 5);
  msg_->spf_request = proto::spf::Request{ip,
                                          env.helo,
                                          env.from.is_null() ? "" : env.from.to_string(),
                                          proto::spf::Identity::kMailFrom,
                                          shard_.config().hostname,
                                          shard_.clock_s()};
  run_spf(shard_.resolver(), msg_->spf_request, alive_, [this](proto::spf::Verdict v) {
    msg_->spf = std::move(v);
    check_done();
  });
  msg_->helo_request = msg_->spf_request;
  msg_->helo_request.identity = proto::spf::Identity::kHelo;
  msg_->helo_spf = {};
  if (env.from.is_null()) {
    check_done();  // the MAIL FROM check above is the HELO one
  } else {
    run_spf(shard_.resolver(), msg_->helo_request, alive_, [this](proto::spf::Verdict v) {
      msg_->helo_spf = std::move(v);
      check_done();
    });
  }
  auto checks = dkim_find(m);
  if (checks.empty()) {
    msg_->dkim_checks.clear();
    check_done();
    return true;
  }
  msg_->verify.conn = this;
  msg_->verify.checks = std::move(checks);
  msg_->verify.on_result = &Connection::on_verified;
  msg_->verify_lookups = 0;
  if (shard_.resolver() != nullptr) {
    for (size_t i = 0; i < msg_->verify.checks.size(); ++i) {
      if (!msg_->verify.checks[i].result.empty()) continue;
      ++msg_->verify_lookups;
      std::weak_ptr<bool> alive = alive_;
      shard_.resolver()->txt(msg_->verify.checks[i].key_name(), [this, alive, i](TxtAnswer a) {
        if (alive.expired() || !*alive.lock()) return;
        msg_->verify.checks[i].key = std::move(a);
        if (--msg_->verify_lookups == 0) verify_lookups_done();
      });
    }
  }
  if (msg_->verify_lookups == 0) verify_lookups_done();
  return true;
}

void Connection::verify_lookups_done() {
  msg_->verify.message = session_.message();
  msg_->verify.hashed = msg_->hasher.get();
  msg_->verify.now_unix = shard_.clock_s();
  msg_->verify.backend = shard_.config().dkim_sha256;
  start_dkim_verify(shard_.file_io(), &msg_->verify);
}

void Connection::on_verified(DkimVerifyJob* j) {
  Connection* self = static_cast<VerifyC*>(j)->conn;
  self->msg_->dkim_checks = std::move(j->checks);
  j->checks.clear();
  self->check_done();
}

void Connection::check_done() {
  if (--msg_->checks_pending > 0) return;
  finish_checks(msg_->dmarc_policy);
}

void Connection::finish_checks(const proto::dmarc::Discovered& policy) {
  const proto::Envelope& env = session_.envelope();
  std::string& m = session_.message();
  // DMARC over the SPF and DKIM results.
  proto::dmarc::Input in;
  in.source_ip = msg_->spf_request.client_ip;
  size_t body;
  if (!proto::dmarc::from_domain(proto::dkim::split_header(m, &body), &in.from_domain))
    in.from_domain.clear();
  in.envelope_from = env.from.is_null() ? "" : proto::ascii_lower(env.from.domain);
  in.spf = {proto::spf::result_name(msg_->spf.result), msg_->spf.domain};
  for (const auto& c : msg_->dkim_checks) in.dkim.push_back({c.result, c.sig.domain});
  const auto org = [](std::string_view d) { return organizational_domain(d); };
  const auto dmarc = proto::dmarc::evaluate(in, policy, org, static_cast<int>(std::rand() % 100));
  std::string line = env.id + ": checks spf=" + proto::spf::result_name(msg_->spf.result);
  for (const auto& c : msg_->dkim_checks)
    line += " dkim:" + (c.sig.domain.empty() ? std::string("?") : c.sig.domain) + "=" + c.result;
  log_line(line + " " + dmarc.log_record);

  const config::Config& cfg = shard_.config();
  std::string refuse;
  if (msg_->spf.result == proto::spf::Result::kFail &&
      cfg.spf_fail == config::FailAction::kReject) {
    refuse = proto::reply::spf_fail(msg_->spf.domain.empty() ? env.helo : msg_->spf.domain,
                                    msg_->spf.explanation, msg_->spf_request.client_ip);
  } else if (dmarc.disposition == proto::dmarc::Policy::kReject &&
             cfg.dmarc_reject == config::FailAction::kReject) {
    refuse = proto::reply::dmarc_reject(in.from_domain);
  }
  if (!refuse.empty()) {
    log_refusal("(end of data)", refuse);
    set_stage(Stage::kReceiving);
    session_.refuse_message(refuse);
  } else {
    std::vector<std::string> parts = {proto::spf::auth_results(msg_->spf_request, msg_->spf)};
    if (!env.from.is_null())
      parts.push_back(proto::spf::auth_results(msg_->helo_request, msg_->helo_spf));
    parts.push_back(dmarc.auth_results);
    std::string fields = "Received-SPF: " + proto::spf::received_spf(msg_->spf_request, msg_->spf) +
                         "\r\n" + authentication_results(cfg.hostname, msg_->dkim_checks, parts);
    if (dmarc.disposition != proto::dmarc::Policy::kNone) {
      fields += std::string("X-Ringmail-Disposition: ") +
                proto::dmarc::to_string(dmarc.disposition) + " (DMARC policy of " + in.from_domain +
                ")\r\n";
    }
    insert_below_received(&m, fields);
    set_stage(Stage::kReady);
  }
  msg_->dkim_checks.clear();
  after_io();
  maybe_finish();
}

bool Connection::start_signing() {
  const DkimKeys* keys = shard_.dkim_keys();
  const proto::Envelope& env = session_.envelope();
  if (keys == nullptr || keys->size() == 0 || (env.auth_user.empty() && !trusted_)) return false;
  const std::string domain = signing_domain(session_.message(), env.from, *keys);
  if (domain.empty()) return false;
  // Sent with a final CRLF in any case (DATA and BDAT alike): signed so.
  // (The relaxed body hash is the same with or without it.)
  std::string& m = session_.message();
  if (m.size() < 2 || m.compare(m.size() - 2, 2, "\r\n") != 0) m += "\r\n";
  const tls::Sha256Digest* bh = msg_->hasher != nullptr ? msg_->hasher->find(true, -1) : nullptr;
  if (bh == nullptr) {  // the keys came with a reload during DATA
    DkimBodyHasher here(true, false, false, shard_.config().dkim_sha256);
    here.finish(m);
    msg_->sign.body_hash = *here.find(true, -1);
  } else {
    msg_->sign.body_hash = *bh;
  }
  msg_->sign.conn = this;
  msg_->sign.message = m;
  msg_->sign.keys = *keys->find(domain);
  msg_->sign.now_unix = shard_.clock_s();
  msg_->sign.on_result = &Connection::on_signed;
  set_stage(Stage::kSigning);
  start_dkim_sign(shard_.file_io(), &msg_->sign);
  return true;
}

void Connection::on_signed(DkimSignJob* j, bool ok) {
  Connection* self = static_cast<SignC*>(j)->conn;
  if (!ok) {
    log_line(self->session_.envelope().id + ": not queued: DKIM signing failed: " + j->error,
             LogLevel::kError);
    self->set_stage(Stage::kReceiving);
    self->session_.refuse_message(std::string(proto::reply::kCannotSign));
  } else {
    self->set_stage(Stage::kReady);
    insert_below_received(&self->session_.message(), j->fields);
    self->shard_.counters().dkim_signatures.fetch_add(1, std::memory_order_relaxed);
  }
  j->fields.clear();
  self->after_io();
  self->maybe_finish();
}

void Connection::on_auth(Authenticator::Check* c, bool ok) {
  Connection* self = static_cast<AuthC*>(c)->conn;
  self->auth_busy_ = false;
  if (self->shut_) {
    self->maybe_finish();
    return;
  }
  // The normalized name, else the name as the client sent it.
  const std::string& tried = c->user.empty() ? self->session_.auth_request().user : c->user;
  const std::string user = tried.empty() ? "-" : log_safe(tried);
  // Locked out while this check ran (other sessions from the address
  // failed meanwhile): refused like any attempt made after the lock-out.
  if (ok && self->locked_out(user)) {
    self->after_io();
    self->maybe_finish();
    return;
  }
  if (ok) {
    self->shard_.counters().auth_success.fetch_add(1, std::memory_order_relaxed);
    log_line("auth ok client=" + self->peer_ + " user=" + user);
    self->session_.auth_done(true, c->user);
  } else {
    self->shard_.counters().auth_failure.fetch_add(1, std::memory_order_relaxed);
    const config::Config& cfg = self->shard_.config();
    const uint32_t n = self->shard_.authenticator().note_failure(self->session_.client_literal(),
                                                                 self->shard_.clock_s());
    log_line("auth failed client=" + self->peer_ + " user=" + user + " (" + std::to_string(n) +
                 " from this address in 10 minutes)",
             LogLevel::kNotice);
    if (n > cfg.auth_failures_max) {
      self->session_.terminate(std::string(proto::reply::kAuthLockedOut));
    } else {
      // Hold the 535 back: n seconds at the default delay (one-second
      // timer slots), at most 5 times the delay.
      const uint64_t ms = uint64_t{cfg.auth_failure_delay_ms} * (n < 5 ? n : 5);
      if (ms == 0) {
        self->session_.auth_done(false, "");
      } else {
        self->auth_delay_pending_ = true;
        self->shard_.wheel().schedule(
            &self->auth_->delay, self->shard_.clock_s() + static_cast<int64_t>((ms + 999) / 1000));
      }
    }
  }
  self->after_io();
  self->maybe_finish();
}

bool Connection::locked_out(const std::string& user) {
  const config::Config& cfg = shard_.config();
  const uint32_t n = shard_.authenticator().failures(session_.client_literal(), shard_.clock_s());
  if (n < cfg.auth_failures_max) return false;
  shard_.counters().auth_failure.fetch_add(1, std::memory_order_relaxed);
  log_line("auth refused client=" + peer_ +
           " user=" + (user.empty() ? std::string("-") : log_safe(user)) + ": locked out (" +
           std::to_string(n) + " failures from this address in 10 minutes)");
  session_.terminate(std::string(proto::reply::kAuthLockedOut));
  return true;
}

void Connection::on_auth_delay(TimerEntry* t) {
  Connection* self = static_cast<Timer*>(t)->conn;
  self->auth_delay_pending_ = false;
  self->session_.auth_done(false, "");
  self->after_io();
  self->maybe_finish();
}

void Connection::implicit_tls_hint() {
  if (greeting_pending_) {
    shard_.wheel().cancel(&greeting_);
    greeting_pending_ = false;
  }
  phase_ = TlsPhase::kClear;  // the reply goes out in clear
  session_.terminate(std::string(proto::reply::kImplicitTlsHint));
  after_io();
  maybe_finish();
}

void Connection::on_greeting_due(TimerEntry* t) {
  Connection* self = static_cast<Timer*>(t)->conn;
  if (self->implicit_tls_) {
    self->greeting_pending_ = false;
    if (self->phase_ == TlsPhase::kHello && self->hello_.empty()) {
      log_line("tls client=" + self->peer_ +
               ": silent on the implicit TLS port (waiting for a 220?), told so");
      self->implicit_tls_hint();
    }
    return;
  }
  self->greeting_pending_ = false;
  self->session_.start();
  self->after_io();
  self->maybe_finish();
}

void Connection::on_timeout(TimerEntry* t) {
  Connection* self = static_cast<Timer*>(t)->conn;
  if (self->phase_ == TlsPhase::kHello ||
      (self->phase_ == TlsPhase::kActive && !self->tls_->handshake_done())) {
    // No TLS yet on a connection that must speak it: a reply in clear would
    // be garbage to the client; just close.
    log_line("tls client=" + self->peer_ + ": handshake timed out");
    self->begin_close();
    return;
  }
  self->session_.timeout();
  self->after_io();
  self->maybe_finish();
}

void Connection::request_shutdown() {
  session_.request_shutdown();
  after_io();
  maybe_finish();
}

void Connection::abort() {
  // First call: the client is told, as RFC 5321 4.1.1.5 asks of a server
  // that closes (a 421 in DATA too: the message is not taken, the client
  // will send it again). A message whose commit runs is left to finish.
  // Later calls (each loop turn) close once the 421 is sent, or after two
  // seconds of a client that does not read it.
  if (!aborting_ && !shut_ && !session_.closing() && !session_.awaiting_commit() &&
      stage_ != Stage::kCommitting) {
    aborting_ = true;
    aborted_s_ = shard_.clock_s();
    if (session_.in_data()) {
      log_line("client=" + peer_ +
               ": shutdown grace over during DATA; 421, the message is not taken");
    }
    session_.terminate(std::string(proto::reply::kShuttingDown));
    after_io();
    maybe_finish();
    return;
  }
  if (aborting_ && out_.busy() && shard_.clock_s() < aborted_s_ + 2) return;
  begin_close();
}

void Connection::begin_close() {
  if (!shut_) {
    shut_ = true;
    shard_.wheel().cancel(&timer_);
    if (greeting_pending_) {
      shard_.wheel().cancel(&greeting_);
      greeting_pending_ = false;
    }
    if (auth_delay_pending_) {
      shard_.wheel().cancel(&auth_->delay);
      auth_delay_pending_ = false;
    }
    // Wakes a pending multishot receive with end of stream, so it finishes.
    ::shutdown(fd_, SHUT_RDWR);
  }
  maybe_finish();
}

void Connection::maybe_finish() {
  if (!shut_ || retired_ || recv_armed_ || out_.busy() || pipeline_busy() || auth_busy_) {
    return;
  }
  retired_ = true;
  log_session_events();
  const proto::Envelope& env = session_.envelope();
  char duration[32];
  std::snprintf(duration, sizeof duration, "%.3f",
                static_cast<double>(shard_.mono_ms() - started_ms_) / 1000.0);
  std::string line = "disconnect client=" + peer_ + " listener=" + shard_.listener_name(listener_);
  if (!env.helo.empty()) line += " helo=" + env.helo;
  if (tls_ != nullptr && tls_->handshake_done()) {
    line += " tls=" + tls_->version() + "/" + tls_->cipher();
  }
  if (!session_.auth_user().empty()) line += " auth=" + session_.auth_user();
  line += " messages=" + std::to_string(messages_) + " refused=" + std::to_string(refused_) +
          " duration=" + duration + "s";
  log_line(line);
  shard_.retire(this);
}

}  // namespace ringmail::engine
