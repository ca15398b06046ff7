#include "engine/shard.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <thread>

#include "engine/connection.h"
#include "engine/http_server.h"
#include "engine/log.h"
#include "engine/verp.h"
#include "proto/dsn.h"
#include "proto/oob.h"
#include "proto/replies.h"

namespace ringmail::engine {

namespace {

constexpr size_t kInboxSlots = 4096;

// mimalloc's, when the daemon runs on it (ringmaild links it; the unit
// tests do not, and then there is nothing to give back this way).
extern "C" void mi_collect(bool force) __attribute__((weak));

// A burst of this many sessions, once mostly gone, is worth a collection.
constexpr size_t kBurstSessions = 1000;

DnsCacheLimits dns_limits(const config::Config& c) {
  return DnsCacheLimits{c.dns_ttl_min_s, c.dns_ttl_max_s, c.dns_cache_entries_max};
}

// A connection refused before its session: the reply, sent without
// waiting (the socket buffer of a new connection takes it), and the close.
void refuse_connection(int fd, std::string_view reply) {
  [[maybe_unused]] ssize_t n = ::send(fd, reply.data(), reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::close(fd);
}

// Client literal for Received headers (RFC 5321 4.1.3) and ip:port for logs.
void describe_peer(int fd, std::string* literal, std::string* peer, sockaddr_storage* out) {
  sockaddr_storage& ss = *out;
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    *literal = "[unknown]";
    *peer = "unknown";
    return;
  }
  char buf[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], buf, sizeof buf);
      *literal = std::string("[") + buf + "]";
    } else {
      inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
      *literal = std::string("[IPv6:") + buf + "]";
    }
    *peer = std::string("[") + buf + "]:" + std::to_string(ntohs(a->sin6_port));
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    *literal = std::string("[") + buf + "]";
    *peer = std::string(buf) + ":" + std::to_string(ntohs(a->sin_port));
  }
}

// Crockford's base32: ids are short, case-insensitive and unambiguous.
constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

}  // namespace

void Shard::RingFileIo::submit(storage::BlockingOp* op) {
  FsyncC* c = free_;
  if (c != nullptr) {
    free_ = c->next_free;
  } else {
    all_.push_back(std::make_unique<FsyncC>());
    c = all_.back().get();
    c->io = this;
  }
  c->op = op;
  shard_.backend_->blocking(op, c);
}

void Shard::RingFileIo::FsyncC::complete(const Event& ev) {
  storage::BlockingOp* o = op;
  op = nullptr;
  next_free = io->free_;
  io->free_ = this;
  o->done(o, ev.res);
}

Shard::Shard(uint32_t index, std::shared_ptr<const config::Config> cfg,
             std::vector<ListenSocket> listen, config::BackendKind backend, const Clock& clock)
    : index_(index),
      clock_(clock),
      started_unix_(clock.wall_s()),
      listeners_configured_(cfg->listeners.size()),
      cfg_(std::move(cfg)),
      listen_(std::move(listen)),
      policy_(cfg_, clock),
      backend_kind_(backend),
      wheel_(clock_s()) {
  now_s_ = clock_s();
  doorbell_.shard = this;
  per_client_ = std::make_shared<ConnectionsPerClient>();
}

Shard::~Shard() {
  for (const ListenSocket& l : listen_) {
    if (l.fd >= 0) ::close(l.fd);
  }
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
  for (DeliveryJob* j : preloaded_) delete j;
}

void Shard::set_peers(std::vector<Shard*> peers) {
  peers_ = std::move(peers);
  inboxes_.clear();
  for (size_t i = 0; i <= peers_.size(); ++i) {
    inboxes_.push_back(std::make_unique<SpscQueue<ShardMessage>>(kInboxSlots));
  }
}

int Shard::open_spool() {
  spool_ = std::make_unique<storage::Spool>(file_io_, cfg_->data_dir, index_,
                                            cfg_->spool_segment_bytes, true);
  if (int r = spool_->open(); r < 0) return r;
  spool_->set_sync_observer(
      [this](uint64_t messages) { stats_.fsync_batch_messages.observe(double(messages)); });
  auth_ = std::make_unique<Authenticator>(file_io_, cfg_->domains_dir, auth_failures_);
  auth_->set_counters(&stats_.auth);
  auth_->set_cache_ttl(cfg_->auth_cache_ttl_s);
  local_ = std::make_unique<LocalDelivery>(*this);
  if (cfg_->events_enabled) {
    events_ = std::make_unique<Events>(file_io_, *cfg_, index_);
    if (int r = events_->open(); r < 0) return r;
  }
  return 0;
}

void Shard::adopt(storage::Spool::RecoveredSegment&& seg) {
  const uint64_t key = spool_->adopt(seg);
  for (auto& rec : seg.records) {
    auto* job = new DeliveryJob();
    job->rec = std::move(rec);
    job->rec.segment = key;
    preloaded_.push_back(job);
  }
}

void Shard::post_from_main(ShardMessage m) {
  while (!inboxes_[peers_.size()]->push(std::move(m))) ::usleep(100);
  backend_->wake();
}

void Shard::post_from_shard(Shard& from, ShardMessage m) {
  // The queue is bounded; a full inbox means the receiver is far behind, so
  // the sender waits for it rather than dropping the message.
  while (!inboxes_[from.index_]->push(std::move(m))) ::usleep(100);
  from.backend_->ring(*backend_);
}

bool Shard::is_local_domain(std::string_view domain) const {
  return policy_.is_local_domain(domain);
}

std::string Shard::check_local_recipient(const proto::Address& a) const {
  return policy_.check_local_recipient(a);
}

std::string Shard::check_relay_recipient(const proto::Envelope& env, const proto::Address& a) {
  if (!refuse_suppressed(env, a)) return "";
  return "550 5.1.1 <" + a.to_string() +
         ">: recipient is on the suppression list (bounced, complained or unsubscribed)";
}

bool Shard::refuse_suppressed(const proto::Envelope& env, const proto::Address& rcpt) {
  if (!suppressions_) return false;
  const std::string address = rcpt.to_string();
  if (!suppressions_->suppressed(proto::ascii_lower(env.from.domain), address)) return false;
  stats_.suppressed_recipients.fetch_add(1, std::memory_order_relaxed);
  if (events_) {
    Events::Detail d;
    d.reply = "550 5.1.1 recipient is on the suppression list";
    events_->record(Events::Type::kSuppressed, env, address, d, clock_s());
  }
  return true;
}

void Shard::change_suppression(storage::SuppressionChange c, std::function<void(int)> done) {
  Shard* first = peers_.front();
  if (first != this) {
    first->post_from_shard(
        *this, msg::Run{[c = std::move(c), done = std::move(done), from = this](Shard& f) mutable {
          f.change_suppression(std::move(c), [from, &f, done = std::move(done)](int r) {
            from->post_from_shard(f, msg::Run{[done, r](Shard&) { done(r); }});
          });
        }});
    return;
  }
  if (!suppression_writer_) {
    suppression_writer_ =
        std::make_unique<SuppressionWriter>(file_io_, storage::suppression_path(cfg_->data_dir));
  }
  const std::string scope = c.scope, address = c.address;
  const bool add = c.add;
  suppression_writer_->append(c, [this, scope, address, add, done = std::move(done)](int r) {
    if (r == 0 && suppressions_) {
      const uint64_t key = suppressions_->key(scope, address);
      for (Shard* peer : peers_) {
        if (peer == this) {
          suppressions_->apply(key, add);
        } else {
          peer->post_from_shard(*this, msg::Run{[key, add](Shard& s) {
            if (s.suppressions_) s.suppressions_->apply(key, add);
          }});
        }
      }
    }
    done(r);
  });
}

void Shard::suppress_after_bounce(const proto::Envelope& env, size_t rcpt, const std::string& reply,
                                  std::string_view status) {
  if (!suppressions_ || cfg_->suppression_bounce_classes.empty() || rcpt >= env.rcpts.size()) {
    return;
  }
  Response r = parse_response(reply);
  if (r.enhanced_code.empty()) r.enhanced_code = status;
  const proto::BounceClass c = cfg_->bounce_classifier->classify(r.code, r.enhanced_code, r.text);
  const auto& classes = cfg_->suppression_bounce_classes;
  if (std::find(classes.begin(), classes.end(), c) == classes.end()) return;
  storage::SuppressionChange change;
  change.unix_time = clock_s();
  change.scope = std::string(storage::kGlobalScope);
  change.address = env.rcpts[rcpt].to_string();
  if (suppressions_->contains(suppressions_->key(change.scope, change.address))) return;
  change.reason = "bounce " + std::string(proto::bounce_class_name(c)) + ": " + reply;
  const std::string line = env.id + ": to=<" + change.address + "> suppressed after a bounce (" +
                           std::string(proto::bounce_class_name(c)) + ")";
  change_suppression(std::move(change), [line](int r) {
    log_line(r == 0 ? line : line + ": not written: " + std::strerror(-r),
             r == 0 ? LogLevel::kInfo : LogLevel::kError);
  });
}

void Shard::read_report(const proto::Envelope& env, std::string_view message) {
  const auto& to = cfg_->events_report_addresses;
  if (to.empty()) return;
  bool for_reports = false;
  for (const auto& r : env.rcpts) {
    const std::string a = proto::ascii_lower(r.to_string());
    for_reports = for_reports || std::find(to.begin(), to.end(), a) != to.end();
  }
  if (!for_reports) return;
  auto report = proto::parse_oob_report(message);
  if (!report) {
    log_line(env.id + ": to a report address, but not a report: " + report.error());
    return;
  }
  const int64_t now = clock_s();
  // The events describe the original message: its queue id when it went
  // through ringmail, and its sender (to whom the report came back).
  proto::Envelope orig;
  orig.id = report->original_queue_id.empty() ? env.id : report->original_queue_id;
  orig.arrival_unix = env.arrival_unix;
  Events::Detail d;
  d.reporting_mta = report->reporting_mta;
  if (report->kind == proto::OobReport::Kind::kDsn) {
    orig.from = env.rcpts.empty() ? proto::Address{} : env.rcpts[0];
    for (const auto& r : report->recipients) {
      if (r.action != "failed") continue;
      // The reply as "CODE STATUS TEXT" when the diagnostic is an SMTP one.
      std::string reply = r.diagnostic;
      if (reply.empty()) reply = r.status;
      d.reply = reply;
      d.status = r.status;
      if (events_) events_->record(Events::Type::kOob, orig, r.final_recipient, d, now);
      log_line(env.id + ": report: " + r.final_recipient + " bounced later (" + reply + ")" +
               (report->original_queue_id.empty() ? "" : " for " + report->original_queue_id));
      const size_t at = r.final_recipient.find('@');
      if (at == std::string::npos) continue;
      proto::Envelope one = orig;
      one.rcpts = {
          proto::Address{r.final_recipient.substr(0, at), r.final_recipient.substr(at + 1)}};
      suppress_after_bounce(one, 0, reply, r.status);
    }
    return;
  }
  // A complaint: the recipient asked not to get this sender's mail.
  const std::string& from = report->original_mail_from;
  const size_t fat = from.find('@');
  if (fat != std::string::npos) orig.from = {from.substr(0, fat), from.substr(fat + 1)};
  d.feedback_type = report->feedback_type;
  d.user_agent = report->user_agent;
  d.source_ip = report->source_ip;
  const std::string scope = orig.from.domain.empty() ? std::string(storage::kGlobalScope)
                                                     : proto::ascii_lower(orig.from.domain);
  for (const std::string& rcpt : report->original_rcpt_tos) {
    if (events_) events_->record(Events::Type::kFeedback, orig, rcpt, d, now);
    log_line(env.id + ": report: " + report->feedback_type + " complaint about mail from <" + from +
             "> to <" + rcpt + ">");
    if (!suppressions_ || rcpt.find('@') == std::string::npos) continue;
    storage::SuppressionChange c;
    c.unix_time = now;
    c.scope = scope;
    c.address = proto::ascii_lower(rcpt);
    if (suppressions_->contains(suppressions_->key(c.scope, c.address))) continue;
    c.reason = "complaint (" + report->feedback_type + ") from " +
               (report->reporting_mta.empty() ? "a feedback report" : report->reporting_mta);
    change_suppression(std::move(c), [](int r) {
      if (r < 0) log_line(std::string("suppression not written: ") + std::strerror(-r));
    });
  }
}

std::string_view Shard::primary_domain() const { return cfg_->primary_domain; }

std::string Shard::new_message_id() {
  // 11 characters of microseconds since the epoch (monotonic per shard, so
  // unique across restarts as long as the clock does not go back) and 2 of
  // the shard index.
  uint64_t us = id_clock_.next_us();
  char id[13];
  for (int i = 10; i >= 0; --i) {
    id[i] = kAlphabet[us & 31];
    us >>= 5;
  }
  id[11] = kAlphabet[(index_ >> 5) & 31];
  id[12] = kAlphabet[index_ & 31];
  return std::string(id, 13);
}

void Shard::run(std::latch& ready) {
  set_log_shard(static_cast<int>(index_));
  backend_ = make_backend(backend_kind_, &error_);
  if (backend_ == nullptr) {
    error_ = "cannot start the " + std::string(to_string(backend_kind_)) + " backend: " + error_;
    outbound_quiesced_.store(true, std::memory_order_release);
    started_.store(true, std::memory_order_release);  // nobody waits for it to start
    ready.count_down();
    return;
  }
  backend_kind_ = backend_->kind();
  backend_->watch_doorbell(&doorbell_);
  reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  for (size_t i = 0; i < listen_.size(); ++i) {
    auto c = std::make_unique<AcceptC>();
    c->shard = this;
    c->listener = i;
    accept_cs_.push_back(std::move(c));
    arm_accept(i);
  }
  spool_->start_preparing();
  {
    auto resolver = AresResolver::create(*backend_, cfg_->dns_servers, 2000, 2);
    resolver_ = resolver ? std::move(*resolver) : nullptr;
    if (resolver_ != nullptr) {
      dns_ = std::make_unique<DnsCache>(*resolver_, clock_, dns_limits(*cfg_), &stats_.dns);
    }
    // MX delivery is opportunistic: certificates are not checked (routes
    // with tls = "verify" get verifying contexts of their own).
    std::shared_ptr<const tls::TlsContext> client_tls;
    if (auto c = tls::TlsContext::client(tls::TlsContext::ClientMode::kOpportunistic)) {
      client_tls = std::move(*c);
    }
    if (resolver_ == nullptr) {
      log_line("outbound: no DNS (" + resolver.error() + "): mail to other domains stays queued");
    } else {
      OutboundQueue::Deps deps;
      deps.counters = &stats_.outbound;
      deps.backend = backend_.get();
      deps.resolver = dns_.get();
      deps.spool = spool_.get();
      // Mail relayed for a sender of another domain (forwarded by an alias,
      // or from an MTA using us as its relay) goes out with an SRS sender,
      // so the receiver's SPF check is against our domain.
      deps.envelope_sender = [this](const proto::Address& from) {
        return policy_.outbound_sender(from);
      };
      deps.verp_sender = [this](const proto::Envelope& env, size_t rcpt) {
        return verp_sender(verp_.get(), *cfg_, env, rcpt);
      };
      deps.helo = cfg_->hostname;
      deps.clock = &clock_;
      deps.events = events_.get();
      deps.hard_bounce = [this](const proto::Envelope& env, size_t rcpt, const std::string& reply) {
        suppress_after_bounce(env, rcpt, reply);
      };
      deps.tls = client_tls;
      deps.held_bytes_max = cfg_->delivery_backlog_bytes_max;
      deps.bounce = [this](OutboundQueue::Bounce b, std::function<void(bool)> done) {
        queue_dsn(std::move(b), std::move(done));
      };
      deps.dispatch = [this](OutboundBatch* b) { dispatch_batch(b); };
      deps.shard = index_;
      outbound_ = std::make_unique<OutboundQueue>(std::move(deps), cfg_->outbound);
      set_suspensions(suspensions_);
      OutboundDispatcher::Deps dd;
      dd.backend = backend_.get();
      dd.resolver = dns_.get();
      dd.helo = cfg_->hostname;
      dd.tls = client_tls;
      dd.complete = [this](OutboundBatch* b) { batch_complete(b); };
      dd.clock = &clock_;
      dd.tls_counters = &stats_.tls_client;
      dispatcher_ = std::make_unique<OutboundDispatcher>(std::move(dd), cfg_->outbound);
    }
  }
  for (DeliveryJob* j : preloaded_) deliver(j);
  preloaded_.clear();
  // Every shard's ring exists before any shard sends another a message.
  // (Not by waiting on `ready`: its owner may destroy it as soon as the
  // count reaches zero.)
  started_.store(true, std::memory_order_release);
  ready.count_down();
  for (const Shard* p : peers_) {
    while (!p->started_.load(std::memory_order_acquire))
      std::this_thread::sleep_for(std::chrono::microseconds(200));
  }

  auto turn_end = std::chrono::steady_clock::now();
  while (true) {
    last_turn_ms_.store(mono_ms(), std::memory_order_relaxed);
    // While deliveries wait for their syncfs, come back soon to start it.
    // Answers the DNS cache holds for this turn go out before any sleep.
    int timeout = dns_ && dns_->has_ready() ? 0 : local_->wait_ms();
    if (const int admin = admin_wait_ms(); admin >= 0 && (timeout < 0 || admin < timeout)) {
      timeout = admin;
    }
    backend_->wait(timeout);
    const auto woke = std::chrono::steady_clock::now();
    const auto us = [](auto d) {
      return static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(d).count());
    };
    stats_.loop_wait_us.fetch_add(us(woke - turn_end), std::memory_order_relaxed);
    tick();
    drain_inboxes();
    if (admin_wait_ms() == 0) run_admin_work();
    // Lookups answered in this turn (by the servers, or from the cache)
    // reach their askers before the queues are serviced.
    if (dns_) dns_->run_ready();
    local_->service();
    if (outbound_) {
      const auto now = clock_s();
      outbound_->service(now);
      dispatcher_->service();
      outbound_->service(now);  // batches the dispatcher finished at once
    }
    flush_hashing();
    for (Connection* c : dead_) {
      per_client_->remove(c->limit_key());
      backend_->close(c->fd());
      conns_.erase(c);
      stats_.open_connections.fetch_sub(1, std::memory_order_relaxed);
    }
    dead_.clear();
    for (HttpConnection* c : dead_http_) {
      backend_->close(c->fd());
      http_conns_.erase(c);
    }
    dead_http_.clear();
    stats_.spool_bytes.store(spool_->segment_bytes(), std::memory_order_relaxed);
    if (events_) {
      events_->turn(std::chrono::steady_clock::now(), clock_.wall_s());
      stats_.events_written.store(events_->recorded(), std::memory_order_relaxed);
      stats_.events_failed.store(events_->failed(), std::memory_order_relaxed);
    }
    turn_end = std::chrono::steady_clock::now();
    const uint64_t busy = us(turn_end - woke);
    stats_.loop_busy_us.fetch_add(busy, std::memory_order_relaxed);
    stats_.loop_turn_s.observe(double(busy) / 1e6);
    if (busy > stats_.loop_turn_max_us.load(std::memory_order_relaxed)) {
      stats_.loop_turn_max_us.store(busy, std::memory_order_relaxed);
    }
    if (stopping_) {
      // Queued deliveries stay in the spool for the next start.
      if (conns_.empty() && http_conns_.empty() && local_->idle() && dsns_signing_ == 0 &&
          injecting_ == 0 && !spool_->preparing() && (!outbound_ || outbound_->idle()) &&
          (!events_ || events_->idle()) && (!suppression_writer_ || suppression_writer_->idle()) &&
          peers_quiesced()) {
        // No shard sends batches any more (seen after their last push):
        // anything still in the inbox is taken before the final check.
        drain_inboxes();
        if (dispatcher_) dispatcher_->service();
        if (!dispatcher_ || dispatcher_->idle()) {
          backend_->wait(0);  // submits the last messages to other shards
          break;
        }
      }
      if (now_s_ >= stop_deadline_s_) {
        for (auto& [c, owned] : conns_) c->abort();
        std::vector<HttpConnection*> http;
        for (auto& [c, owned] : http_conns_) http.push_back(c);
        for (HttpConnection* c : http) c->close_now();
      }
    }
  }
  const uint64_t outbound_left = stats_.outbound.queued.load();
  dispatcher_.reset();
  outbound_.reset();  // its batches are back; what is queued stays in the spool
  dns_.reset();
  resolver_.reset();
  // Jobs waiting for a retry stay in the spool and are recovered at start.
  // Counted from the queues themselves: what is left is what the next
  // start recovers.
  log_line("stopped: " + std::to_string(stats_.accepted_connections.load()) + " connections, " +
           std::to_string(stats_.messages_queued.load()) + " messages accepted with " +
           std::to_string(spool_->syncs()) +
           " spool syncs; finished: " + std::to_string(stats_.messages_delivered.load()) +
           " messages delivered locally, " + std::to_string(stats_.outbound.finished.load()) +
           " messages relayed (" + std::to_string(stats_.outbound.delivered.load()) +
           " recipients delivered, " + std::to_string(stats_.outbound.bounced.load()) +
           " bounced); left for the next start: " + std::to_string(outbound_left) +
           " messages for remote recipients, " +
           std::to_string(local_->queued() + local_->retrying()) + " local deliveries");
}

void Shard::tick() {
  int64_t now = clock_s();
  if (now == now_s_) return;
  now_s_ = now;
  give_back_memory();
  if (dns_) dns_->tick();  // and the resolver's timeouts
  if (outbound_) {
    dispatcher_->tick();
    outbound_->tick(clock_s());
  }
  wheel_.advance(now, [](TimerWheel::Node* n) {
    auto* t = static_cast<TimerEntry*>(n);
    t->fire(t);
  });
}

void Shard::give_back_memory() {
  // After a burst of connections the allocator keeps their pages: when
  // most of the sessions of a burst are gone, hand the free ones back to
  // the kernel (once per burst, on this shard's own heap).
  conns_peak_ = std::max(conns_peak_, conns_.size());
  if (conns_peak_ >= kBurstSessions && conns_.size() <= conns_peak_ / 4) {
    if (mi_collect != nullptr) mi_collect(true);
    conns_peak_ = conns_.size();
  }
}

void Shard::drain_inboxes() {
  for (auto& q : inboxes_) {
    while (auto m = q->pop()) handle(std::move(*m));
  }
}

// One handler per message type; std::visit picks it (a new message
// type that is not handled here does not compile).
void Shard::handle(ShardMessage&& m) {
  struct Handler {
    Shard& s;
    void operator()(msg::Stop&) { s.begin_stop(); }
    void operator()(msg::Reload& r) { s.reload(std::move(r)); }
    void operator()(msg::Certs& c) { s.certs_ = std::move(c.certs); }
    void operator()(msg::Domains& d) { s.policy_.set_domains(std::move(d.domains)); }
    void operator()(msg::BatchToOwner& b) {
      if (s.dispatcher_) {
        s.dispatcher_->submit(b.batch);
        return;
      }
      // No DNS here (see run()): the mail waits for a later attempt.
      for (OutboundMessage* msg : b.batch->msgs) {
        msg->results.assign(msg->rcpts.size(), proto::SmtpClient::RcptResult{proto::Outcome::kTemp,
                                                                             "no DNS resolver"});
      }
      s.batch_complete(b.batch);
    }
    void operator()(msg::BatchDone& b) {
      if (s.outbound_) s.outbound_->batch_done(b.batch);
    }
    void operator()(msg::Run& r) { r.fn(s); }
  };
  std::visit(Handler{*this}, m);
}

int Shard::admin_wait_ms() {
  if (later_.empty()) return -1;
  const int64_t now = mono_ms();
  if (now - admin_window_ms_ >= 1000) {
    admin_window_ms_ = now;
    admin_window_us_ = 0;
  }
  if (admin_window_us_ < kAdminShareUs || !accepting_mail(now)) return 0;
  return static_cast<int>(admin_window_ms_ + 1000 - now);
}

void Shard::run_admin_work() {
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::function<void()>> now;
  now.swap(later_);
  for (auto& fn : now) fn();
  admin_window_us_ += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                std::chrono::steady_clock::now() - start)
                                                .count());
}

void Shard::set_suspensions(std::shared_ptr<const Suspensions> s) {
  suspensions_ = std::move(s);
  if (!outbound_) return;
  std::map<std::string, int64_t> until;
  for (const auto& [domain, sus] : *suspensions_) until[domain] = sus.until_unix;
  outbound_->set_suspended(std::move(until));
}

void Shard::reload(msg::Reload&& m) {
  const std::string old_dns = cfg_->dns_servers;
  inject_rates_ = std::move(m.inject_rates);
  cfg_ = std::move(m.config);
  policy_.set_config(cfg_);
  if (cfg_->dns_servers != old_dns) {
    const std::string now =
        cfg_->dns_servers.empty() ? "the system's (resolv.conf)" : cfg_->dns_servers;
    if (resolver_ == nullptr) {
      log_line("dns: servers changed to " + now +
                   ", but this shard started without DNS: restart to use them",
               LogLevel::kWarning);
    } else {
      resolver_->set_servers(cfg_->dns_servers, [this, now](const std::string& error) {
        if (error.empty()) {
          if (dns_) dns_->clear();  // answers of the old servers go
          log_line("dns: now asking " + now);
        } else {
          log_line("dns: cannot use the new servers (" + error + "): still asking the old ones",
                   LogLevel::kWarning);
        }
      });
    }
  }
  if (dns_) dns_->set_limits(dns_limits(*cfg_));
  if (auth_) auth_->set_cache_ttl(cfg_->auth_cache_ttl_s);
  if (m.dkim) dkim_ = std::move(m.dkim);
  if (m.domains) policy_.set_domains(std::move(m.domains));
  policy_.set_srs(std::move(m.srs));
  unsubscribe_ = std::move(m.unsubscribe);
  verp_ = std::move(m.verp);
  if (outbound_) {
    outbound_->reconfigure(cfg_->outbound);
    dispatcher_->reconfigure(cfg_->outbound);
  }
  log_line("configuration reloaded");
}

void Shard::dispatch_batch(OutboundBatch* b) {
  const uint32_t owner = owner_shard(b->domain, static_cast<uint32_t>(peers_.size()));
  if (owner == index_ || owner >= peers_.size()) {
    dispatcher_->submit(b);
    return;
  }
  peers_[owner]->post_from_shard(*this, msg::BatchToOwner{b});
}

void Shard::batch_complete(OutboundBatch* b) {
  if (b->home == index_ || b->home >= peers_.size()) {
    if (outbound_) outbound_->batch_done(b);
    return;
  }
  peers_[b->home]->post_from_shard(*this, msg::BatchDone{b});
}

void Shard::queue_hashing(DkimBodyHasher* h) {
  if (h->queued) return;
  h->queued = true;
  hashing_.push_back(h);
}

void Shard::forget_hashing(DkimBodyHasher* h) {
  if (!h->queued) return;
  h->queued = false;
  std::erase(hashing_, h);
}

void Shard::flush_hashing() {
  if (hashing_.empty()) return;
  std::vector<tls::Sha256Deferred*> jobs;
  for (DkimBodyHasher* h : hashing_) {
    h->jobs(&jobs);
    h->queued = false;
  }
  hashing_.clear();
  tls::pump_many(jobs.data(), jobs.size(), kDkimBatchMin, cfg_->dkim_sha256);
}

bool Shard::peers_quiesced() const {
  for (const Shard* p : peers_) {
    if (p != this && !p->outbound_quiesced_.load(std::memory_order_acquire)) return false;
  }
  return true;
}

void Shard::begin_stop() {
  if (stopping_) return;
  stopping_ = true;
  stop_deadline_s_ = now_s_ + cfg_->shutdown_grace_s;
  for (size_t i = 0; i < listen_.size(); ++i) {
    if (listen_[i].shared) {
      // systemd's socket (and the other shards' copies) must keep
      // listening: only this shard's accept is withdrawn.
      if (i < accept_cs_.size() && accept_cs_[i]->armed) {
        backend_->cancel(listen_[i].fd, accept_cs_[i].get());
      }
    } else {
      // Wakes the multishot accept with an error; the ring holds its own
      // reference to the socket until then.
      ::shutdown(listen_[i].fd, SHUT_RDWR);
    }
  }
  std::vector<Connection*> all;
  for (auto& [c, owned] : conns_) all.push_back(c);
  for (Connection* c : all) c->request_shutdown();
  std::vector<HttpConnection*> http;
  for (auto& [c, owned] : http_conns_) http.push_back(c);
  for (HttpConnection* c : http) c->abort();
  if (outbound_) {
    outbound_->stop();
    dispatcher_->stop();
  }
  outbound_quiesced_.store(true, std::memory_order_release);
  // Wake the others: one of them may be waiting only for this. (A message
  // through the ring would wait for this shard's next submit, and this
  // shard may be about to leave its loop.)
  for (Shard* p : peers_) {
    if (p != this && p->backend_ != nullptr) p->backend_->wake();
  }
}

// A socket the shards share (systemd's) gets one accept at a time, so the
// shards take turns (AcceptMode::kOne); a shard's own socket gets a
// multishot one.
void Shard::arm_accept(size_t listener) {
  AcceptC* ac = accept_cs_[listener].get();
  ac->armed = true;
  backend_->accept(listen_[listener].fd, ac,
                   listen_[listener].shared ? AcceptMode::kOne : AcceptMode::kMultishot);
}

void Shard::on_accept(size_t listener, const Event& ev) {
  AcceptC* ac = accept_cs_[listener].get();
  if (!ev.more) ac->armed = false;
  if (const IoError err = ev.error(); err != IoError::kNone) {
    const bool no_fds = err == IoError::kNoDescriptors;
    if (!stopping_ && !no_fds && err != IoError::kTransient) {
      log_line(std::string("accept on ") + listener_name(listener) + ": " + std::strerror(-ev.res));
    }
    // Out of descriptors: the clients waiting in the backlog get their 421
    // through the reserve descriptor instead of hanging (the epoll backend
    // reports this with the accept still armed).
    const size_t served = no_fds && !stopping_ ? refuse_out_of_descriptors(listener) : 0;
    if (!ac->armed && !stopping_) {
      // If some were waiting, accepting goes on at once; else in a second
      // (io_uring's accept fails at once while no descriptor is free).
      if (served > 0) {
        arm_accept(listener);
      } else if (no_fds || err == IoError::kNoBuffers || err == IoError::kNoMemory) {
        // Out of descriptors or memory: try again in a second rather than
        // spinning on the same error.
        ac->rearm.accept = ac;
        ac->rearm.fire = [](TimerEntry* t) {
          AcceptC* a = static_cast<AcceptC::Rearm*>(t)->accept;
          if (a->shard->stopping_ || a->armed) return;
          a->shard->arm_accept(a->listener);
        };
        wheel_.schedule(&ac->rearm, clock_s() + 1);
      } else {
        arm_accept(listener);
      }
    }
    return;
  }
  if (!ac->armed && !stopping_) {
    arm_accept(listener);
  }
  const int fd = ev.res;
  if (stopping_) {
    ::close(fd);
    return;
  }
  stats_.accepted_connections.fetch_add(1, std::memory_order_relaxed);
  if (listener >= listeners_configured_) {  // the admin socket (make_shards gives it last)
    ucred cred{};
    socklen_t len = sizeof cred;
    std::string peer = "admin";
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      peer += " uid=" + std::to_string(cred.uid) + " pid=" + std::to_string(cred.pid);
    }
    auto conn = std::make_unique<HttpConnection>(*this, fd, peer, HttpAccess::kAdminSocket);
    HttpConnection* c = conn.get();
    http_conns_.emplace(c, std::move(conn));
    c->start();
    return;
  }
  if (cfg_->listeners[listener].http) {
    std::string literal, peer;
    sockaddr_storage addr{};
    describe_peer(fd, &literal, &peer, &addr);
    auto conn = std::make_unique<HttpConnection>(*this, fd, peer, HttpAccess::kTokens);
    HttpConnection* c = conn.get();
    http_conns_.emplace(c, std::move(conn));
    c->start();
    return;
  }
  std::string literal, peer;
  sockaddr_storage addr{};
  describe_peer(fd, &literal, &peer, &addr);
  if (conns_.size() >= cfg_->connections_max) {
    refuse_connection(fd, proto::reply::kTooManyConnections);
    note_refusal(peer, proto::reply::kTooManyConnections,
                 "connections_max " + std::to_string(cfg_->connections_max) + " on this shard");
    return;
  }
  const bool trusted = config::in_networks(cfg_->relay_networks, addr);
  // Counted over all shards; relay_networks (our own MTAs and applications)
  // are not limited.
  std::string key = trusted ? std::string() : client_key(literal);
  switch (per_client_->try_add(key, cfg_->connections_per_ip_max)) {
    case ConnectionsPerClient::Verdict::kOk:
      break;
    case ConnectionsPerClient::Verdict::kClientFull:
      refuse_connection(fd, proto::reply::kTooManyFromAddress);
      note_refusal(peer, proto::reply::kTooManyFromAddress,
                   "connections_per_ip_max " + std::to_string(cfg_->connections_per_ip_max) +
                       " from " + key);
      return;
    case ConnectionsPerClient::Verdict::kAllFull:
      refuse_connection(fd, proto::reply::kTooManyConnections);
      note_refusal(peer, proto::reply::kTooManyConnections,
                   std::to_string(per_client_->total_max()) +
                       " connections in all, the most the open-file limit allows");
      return;
  }
  auto conn =
      std::make_unique<Connection>(*this, fd, cfg_->listeners[listener], literal, peer, trusted);
  Connection* c = conn.get();
  c->set_limit_key(std::move(key));
  conns_.emplace(c, std::move(conn));
  stats_.open_connections.fetch_add(1, std::memory_order_relaxed);
  c->start();
}

void Shard::retire(Connection* c) { dead_.push_back(c); }

void Shard::deliver(DeliveryJob* job) { local_->deliver(job); }

void Shard::commit(storage::Spool::Commit* c) {
  last_commit_ms_ = mono_ms();
  spool_->commit(c);
}

void Shard::commit_batch(storage::Spool::Batch* b) {
  last_commit_ms_ = mono_ms();
  spool_->commit_batch(b);
}

void Shard::note_refusal(const std::string& peer, std::string_view reply, const std::string& why) {
  const int64_t now = clock_s();
  if (now == refused_log_s_) {
    ++refused_unlogged_;  // one line a second at most, under a flood
    return;
  }
  if (reply.size() >= 2 && reply.substr(reply.size() - 2) == "\r\n") reply.remove_suffix(2);
  log_line("NOQUEUE: refused (connection limit: " + why + ") client=" + peer + ": " +
               std::string(reply) +
               (refused_unlogged_ > 0
                    ? " (and " + std::to_string(refused_unlogged_) + " more in the last second)"
                    : std::string()),
           LogLevel::kWarning);
  refused_log_s_ = now;
  refused_unlogged_ = 0;
}

std::string Shard::listener_name(size_t listener) const {
  return listener < listeners_configured_ ? cfg_->listeners[listener].address : "the admin socket";
}

size_t Shard::refuse_out_of_descriptors(size_t listener) {
  if (reserve_fd_ < 0) return 0;
  ::close(reserve_fd_);
  reserve_fd_ = -1;
  size_t served = 0;
  // Bounded: the loop must turn again for everything else.
  for (; served < 256; ++served) {
    const int fd = ::accept4(listen_[listener].fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) break;
    refuse_connection(fd, proto::reply::kTooManyConnections);
  }
  reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (served > 0) {
    note_refusal("-", proto::reply::kTooManyConnections,
                 std::to_string(served) +
                     " clients: out of file descriptors (RLIMIT_NOFILE), the reserve one answered");
  }
  return served;
}

namespace {
// A DSN on its way into the spool, signed first when it can be.
struct DsnCommit : storage::Spool::Commit {
  struct Sign : DkimSignJob {
    DsnCommit* owner = nullptr;
  };
  Shard* shard = nullptr;
  proto::Envelope envelope;
  std::string text;
  std::function<void(bool)> then;
  Sign sign;
  std::string about;  // the queue id of the message it reports on
  bool delayed = false;
};

// The keys that sign our own messages (DSNs, delay warnings), whose From is
// MAILER-DAEMON@<hostname>: the hostname's, else its nearest parent
// domain's that has keys (mail.example.com signs as example.com, which
// DMARC's relaxed alignment accepts).
const std::vector<DkimSigner>* own_keys(const DkimKeys* keys, std::string domain) {
  if (keys == nullptr) return nullptr;
  while (domain.find('.') != std::string::npos) {
    if (const auto* k = keys->find(domain)) return k;
    domain.erase(0, domain.find('.') + 1);
  }
  return nullptr;
}
}  // namespace

void Shard::queue_dsn(OutboundQueue::Bounce b, std::function<void(bool)> done) {
  stats_.dsns_queued.fetch_add(1, std::memory_order_relaxed);
  proto::DsnInput in;
  in.reporting_host = cfg_->hostname;
  in.message_id = b.rec.env.id;
  in.sender = b.rec.env.from;
  in.arrival_unix = b.rec.env.arrival_unix;
  in.now_unix = clock_s();
  in.delayed = b.delayed;
  in.retry_until_unix = b.retry_until_unix;
  for (const auto& [idx, res] : b.failed) {
    in.recipients.push_back(
        proto::DsnRecipient{b.rec.env.rcpts[idx], "", res.reply, b.remote_host});
  }
  in.original = b.rec.message;
  auto* c = new DsnCommit();
  c->shard = this;
  c->about = b.rec.env.id;
  c->delayed = b.delayed;
  c->envelope.id = new_message_id();
  c->envelope.client = "[127.0.0.1]";
  c->envelope.helo = cfg_->hostname;
  c->envelope.arrival_unix = in.now_unix;
  c->envelope.rcpts = {b.rec.env.from};  // from <>: a DSN is never bounced again
  c->envelope.smtputf8 = b.rec.env.smtputf8;
  c->text = proto::make_dsn(in);
  c->env = &c->envelope;
  c->then = std::move(done);
  c->done = [](storage::Spool::Commit* cc, proto::CommitResult r) {
    std::unique_ptr<DsnCommit> d(static_cast<DsnCommit*>(cc));
    const bool ok = r == proto::CommitResult::kOk;
    log_line(d->about + ": " + (d->delayed ? "delay warning " : "bounce ") + d->envelope.id +
             " to=<" + d->envelope.rcpts[0].to_string() + ">" +
             (ok ? " queued" : " not queued (will try again)"));
    if (ok) {
      if (Events* events = d->shard->events()) {
        Events::Detail detail;
        detail.protocol = d->delayed ? "DelayWarning" : "DSN";
        detail.size = d->text.size();
        events->record(Events::Type::kReception, d->envelope, 0, detail, d->shard->clock_s());
      }
      auto* job = new DeliveryJob();
      job->rec.env = d->envelope;
      job->rec.message = std::move(d->text);
      job->rec.segment = d->segment;
      job->rec.offset = d->offset;
      job->rec.length = d->length;
      d->shard->deliver(job);
    }
    d->then(ok);
  };
  // Signed like our users' mail, so receivers see dkim=pass and DMARC
  // passes for our own bounces; off the shard's thread (RSA costs a
  // millisecond or two, and bounces come in bursts).
  if (const auto* keys = own_keys(dkim_.get(), proto::ascii_lower(cfg_->hostname))) {
    DkimBodyHasher hasher(true, false, false, cfg_->dkim_sha256);
    hasher.finish(c->text);
    c->sign.owner = c;
    c->sign.message = c->text;
    c->sign.body_hash = *hasher.find(true, -1);
    c->sign.keys = *keys;
    c->sign.now_unix = in.now_unix;
    c->sign.on_result = [](DkimSignJob* j, bool ok) {
      DsnCommit* d = static_cast<DsnCommit::Sign*>(j)->owner;
      --d->shard->dsns_signing_;
      if (ok) {
        d->text.insert(0, j->fields);
      } else {
        // Never lose a bounce for want of a signature.
        log_line(
            d->envelope.id + ": DKIM signing of the DSN failed (" + j->error + "), sent unsigned",
            LogLevel::kWarning);
      }
      d->message = d->text;
      d->shard->spool_->commit(d);
    };
    ++dsns_signing_;
    start_dkim_sign(file_io_, &c->sign);
    return;
  }
  c->message = c->text;
  spool_->commit(c);
}

}  // namespace ringmail::engine
