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
#include "engine/pipe.h"
#include "proto/dsn.h"

namespace ringmail::engine {

namespace {

constexpr size_t kInboxSlots = 4096;
constexpr char kTooManyConnections[] = "421 4.7.0 Too many connections\r\n";

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

int64_t Shard::clock_s() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return ts.tv_sec;
}

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

Shard::Shard(uint32_t index, std::shared_ptr<const config::Config> cfg, std::vector<int> listen_fds,
             config::BackendKind backend)
    : index_(index),
      cfg_(std::move(cfg)),
      listen_fds_(std::move(listen_fds)),
      policy_(cfg_),
      backend_kind_(backend),
      wheel_(clock_s()) {
  now_s_ = clock_s();
  doorbell_.shard = this;
  per_client_ = std::make_shared<ConnectionsPerClient>();
}

Shard::~Shard() {
  for (int fd : listen_fds_) {
    if (fd >= 0) ::close(fd);
  }
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
  for (DeliveryJob* j : preloaded_) delete j;
  for (DeliveryJob* j : delivery_queue_) delete j;
  for (DeliveryJob* j : retrying_) delete j;  // still in the spool for the next start
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
  auth_ = std::make_unique<Authenticator>(file_io_, cfg_->domains_dir, auth_failures_);
  maildir_ = std::make_unique<storage::MaildirDelivery>(
      file_io_, *spool_, cfg_->data_dir, cfg_->hostname,
      cfg_->maildir_sync_batch ? storage::MaildirDelivery::SyncMode::kBatch
                               : storage::MaildirDelivery::SyncMode::kPerFile,
      [this](const std::string& domain) { return is_local_domain(domain); });
  return 0;
}

void Shard::adopt(storage::Spool::RecoveredSegment&& seg) {
  const uint64_t key = spool_->adopt(seg.name, seg.records.size());
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

int64_t Shard::steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
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
  for (size_t i = 0; i < listen_fds_.size(); ++i) {
    auto c = std::make_unique<AcceptC>();
    c->shard = this;
    c->listener = i;
    c->armed = true;
    backend_->accept(listen_fds_[i], c.get());
    accept_cs_.push_back(std::move(c));
  }
  spool_->start_preparing();
  {
    std::string why;
    resolver_ = AresResolver::create(*backend_, cfg_->dns_servers, 2000, 2, &why);
    // MX delivery is opportunistic: certificates are not checked (routes
    // with tls = "verify" get verifying contexts of their own).
    auto client_tls = tls::TlsContext::client(tls::TlsContext::ClientMode::kOpportunistic, &why);
    if (resolver_ == nullptr) {
      log_line("outbound: no DNS (" + why + "): mail to other domains stays queued");
    } else {
      OutboundQueue::Deps deps;
      deps.counters = &stats_.outbound;
      deps.backend = backend_.get();
      deps.resolver = resolver_.get();
      deps.spool = spool_.get();
      // Mail relayed for a sender of another domain (forwarded by an alias,
      // or from an MTA using us as its relay) goes out with an SRS sender,
      // so the receiver's SPF check is against our domain.
      deps.envelope_sender = [this](const proto::Address& from) {
        return policy_.outbound_sender(from);
      };
      deps.helo = cfg_->hostname;
      deps.tls = client_tls;
      deps.held_bytes_max = cfg_->delivery_backlog_bytes_max;
      deps.bounce = [this](OutboundQueue::Bounce b, std::function<void(bool)> done) {
        queue_dsn(std::move(b), std::move(done));
      };
      deps.dispatch = [this](OutboundBatch* b) { dispatch_batch(b); };
      deps.shard = index_;
      outbound_ = std::make_unique<OutboundQueue>(std::move(deps), cfg_->outbound);
      OutboundDispatcher::Deps dd;
      dd.backend = backend_.get();
      dd.resolver = resolver_.get();
      dd.helo = cfg_->hostname;
      dd.tls = client_tls;
      dd.complete = [this](OutboundBatch* b) { batch_complete(b); };
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
    // The turn starts where the last one ended: no extra clock read.
    last_turn_ms_.store(
        std::chrono::duration_cast<std::chrono::milliseconds>(turn_end.time_since_epoch()).count(),
        std::memory_order_relaxed);
    // While deliveries wait for their syncfs, come back soon to start it.
    backend_->wait(maildir_->sync_pending() || deliveries_deferred_ ? 5
                   : pipes_inflight_ > 0                            ? 20
                                                                    : 1000);
    const auto woke = std::chrono::steady_clock::now();
    const auto us = [](auto d) {
      return static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(d).count());
    };
    stats_.loop_wait_us.fetch_add(us(woke - turn_end), std::memory_order_relaxed);
    if (pipes_inflight_ > 0) pipes_inflight_ -= static_cast<size_t>(pipe_pool_->drain());
    tick();
    drain_inboxes();
    flush_deliveries();
    if (outbound_) {
      const auto now = static_cast<int64_t>(std::time(nullptr));
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
    turn_end = std::chrono::steady_clock::now();
    stats_.loop_busy_us.fetch_add(us(turn_end - woke), std::memory_order_relaxed);
    if (stopping_) {
      // Queued deliveries stay in the spool for the next start.
      if (conns_.empty() && http_conns_.empty() && deliveries_inflight_ == 0 &&
          dsns_signing_ == 0 && !spool_->preparing() && (!outbound_ || outbound_->idle()) &&
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
      }
    }
  }
  dispatcher_.reset();
  outbound_.reset();  // its batches are back; what is queued stays in the spool
  resolver_.reset();
  // Jobs waiting for a retry stay in the spool and are recovered at start.
  log_line("stopped: " + std::to_string(stats_.accepted_connections.load()) + " connections, " +
           std::to_string(stats_.messages_queued.load()) + " messages queued with " +
           std::to_string(spool_->syncs()) + " spool syncs, " +
           std::to_string(stats_.messages_delivered.load()) + " delivered, " +
           std::to_string(delivery_queue_.size()) + " left queued for the next start");
}

int64_t Shard::mono_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void Shard::flush_deliveries() {
  if (deliveries_deferred_) start_deliveries();
  if (!maildir_->sync_pending()) {
    delivery_sync_wait_since_ms_ = 0;
    return;
  }
  const int64_t now_ms = mono_ms();
  if (delivery_sync_wait_since_ms_ == 0) delivery_sync_wait_since_ms_ = now_ms;
  // Acknowledging mail goes first: a delivery syncfs starts when the spool
  // has no sync running, or when the batch has waited long enough anyway.
  if (spool_->idle() || stopping_ ||
      now_ms - delivery_sync_wait_since_ms_ >= cfg_->delivery_sync_delay_ms) {
    maildir_->flush();
    delivery_sync_wait_since_ms_ = 0;
  }
}

void Shard::tick() {
  int64_t now = clock_s();
  if (now == now_s_) return;
  now_s_ = now;
  if (resolver_) resolver_->tick();
  if (outbound_) {
    dispatcher_->tick();
    outbound_->tick(static_cast<int64_t>(std::time(nullptr)));
  }
  wheel_.advance(now, [](TimerWheel::Node* n) {
    auto* t = static_cast<TimerEntry*>(n);
    t->fire(t);
  });
}

void Shard::drain_inboxes() {
  for (auto& q : inboxes_) {
    while (auto m = q->pop()) handle(std::move(*m));
  }
}

void Shard::handle(ShardMessage&& m) {
  switch (m.type) {
    case ShardMessage::Type::kStop:
      begin_stop();
      break;
    case ShardMessage::Type::kReload: {
      const std::string old_dns = cfg_->dns_servers;
      cfg_ = std::move(m.config);
      policy_.set_config(cfg_);
      if (cfg_->dns_servers != old_dns) {
        const std::string now =
            cfg_->dns_servers.empty() ? "the system's (resolv.conf)" : cfg_->dns_servers;
        if (resolver_ == nullptr) {
          log_line("dns: dns_servers changed to " + now +
                       ", but this shard started without DNS: restart to use them",
                   LogLevel::kWarning);
        } else {
          resolver_->set_servers(cfg_->dns_servers, [now](const std::string& error) {
            if (error.empty()) {
              log_line("dns: now asking " + now);
            } else {
              log_line(
                  "dns: cannot use the new dns_servers (" + error + "): still asking the old ones",
                  LogLevel::kWarning);
            }
          });
        }
      }
      if (m.dkim) dkim_ = std::move(m.dkim);
      if (m.domains) policy_.set_domains(std::move(m.domains));
      policy_.set_srs(std::move(m.srs));
      if (outbound_) {
        outbound_->reconfigure(cfg_->outbound);
        dispatcher_->reconfigure(cfg_->outbound);
      }
      log_line("configuration reloaded");
      break;
    }
    case ShardMessage::Type::kDomains:
      policy_.set_domains(std::move(m.domains));
      break;
    case ShardMessage::Type::kCerts:
      certs_ = std::move(m.certs);  // sessions in progress keep their contexts
      break;
    case ShardMessage::Type::kDeliver:
      deliver(m.job);
      break;
    case ShardMessage::Type::kPing:
      stats_.pings.fetch_add(1, std::memory_order_relaxed);
      break;
    case ShardMessage::Type::kPingPeer:
      if (m.value < peers_.size()) {
        ShardMessage ping;
        ping.type = ShardMessage::Type::kPing;
        peers_[m.value]->post_from_shard(*this, std::move(ping));
      }
      break;
    case ShardMessage::Type::kOutboundBatch:
      if (dispatcher_) {
        dispatcher_->submit(m.batch);
      } else {
        // No DNS here (see run()): the mail waits for a later attempt.
        for (OutboundMessage* msg : m.batch->msgs) {
          msg->results.assign(msg->rcpts.size(), proto::SmtpClient::RcptResult{
                                                     proto::Outcome::kTemp, "no DNS resolver"});
        }
        batch_complete(m.batch);
      }
      break;
    case ShardMessage::Type::kOutboundDone:
      if (outbound_) outbound_->batch_done(m.batch);
      break;
    case ShardMessage::Type::kNone:
      break;
  }
}

void Shard::dispatch_batch(OutboundBatch* b) {
  const uint32_t owner = owner_shard(b->domain, static_cast<uint32_t>(peers_.size()));
  if (owner == index_ || owner >= peers_.size()) {
    dispatcher_->submit(b);
    return;
  }
  ShardMessage m;
  m.type = ShardMessage::Type::kOutboundBatch;
  m.batch = b;
  peers_[owner]->post_from_shard(*this, std::move(m));
}

void Shard::batch_complete(OutboundBatch* b) {
  if (b->home == index_ || b->home >= peers_.size()) {
    if (outbound_) outbound_->batch_done(b);
    return;
  }
  ShardMessage m;
  m.type = ShardMessage::Type::kOutboundDone;
  m.batch = b;
  peers_[b->home]->post_from_shard(*this, std::move(m));
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
  for (int& fd : listen_fds_) {
    // Wakes the multishot accept with an error; the ring holds its own
    // reference to the socket until then.
    ::shutdown(fd, SHUT_RDWR);
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

void Shard::on_accept(size_t listener, const Event& ev) {
  AcceptC* ac = accept_cs_[listener].get();
  if (!ev.more) ac->armed = false;
  if (ev.res < 0) {
    const bool no_fds = ev.res == -EMFILE || ev.res == -ENFILE;
    if (!stopping_ && !no_fds && ev.res != -EAGAIN && ev.res != -EINTR && ev.res != -ECONNABORTED) {
      log_line(std::string("accept on ") + cfg_->listeners[listener].address + ": " +
               std::strerror(-ev.res));
    }
    // Out of descriptors: the clients waiting in the backlog get their 421
    // through the reserve descriptor instead of hanging (the epoll backend
    // reports this with the accept still armed).
    const size_t served = no_fds && !stopping_ ? refuse_out_of_descriptors(listener) : 0;
    if (!ac->armed && !stopping_) {
      // If some were waiting, accepting goes on at once; else in a second
      // (io_uring's accept fails at once while no descriptor is free).
      if (served > 0) {
        ac->armed = true;
        backend_->accept(listen_fds_[listener], ac);
      } else if (no_fds || ev.res == -ENOBUFS || ev.res == -ENOMEM) {
        // Out of descriptors or memory: try again in a second rather than
        // spinning on the same error.
        ac->rearm.accept = ac;
        ac->rearm.fire = [](TimerEntry* t) {
          AcceptC* a = static_cast<AcceptC::Rearm*>(t)->accept;
          if (a->shard->stopping_ || a->armed) return;
          a->armed = true;
          a->shard->backend_->accept(a->shard->listen_fds_[a->listener], a);
        };
        wheel_.schedule(&ac->rearm, clock_s() + 1);
      } else {
        ac->armed = true;
        backend_->accept(listen_fds_[listener], ac);
      }
    }
    return;
  }
  if (!ac->armed && !stopping_) {
    ac->armed = true;
    backend_->accept(listen_fds_[listener], ac);
  }
  const int fd = ev.res;
  if (stopping_) {
    ::close(fd);
    return;
  }
  stats_.accepted_connections.fetch_add(1, std::memory_order_relaxed);
  if (cfg_->listeners[listener].http) {
    std::string literal, peer;
    sockaddr_storage addr{};
    describe_peer(fd, &literal, &peer, &addr);
    auto conn = std::make_unique<HttpConnection>(*this, fd, peer);
    HttpConnection* c = conn.get();
    http_conns_.emplace(c, std::move(conn));
    c->start();
    return;
  }
  if (conns_.size() >= cfg_->connections_max) {
    refuse_connection(fd, kTooManyConnections);
    note_refusal("connections_max (" + std::to_string(cfg_->connections_max) + " on this shard)");
    return;
  }
  std::string literal, peer;
  sockaddr_storage addr{};
  describe_peer(fd, &literal, &peer, &addr);
  const bool trusted = config::in_networks(cfg_->relay_networks, addr);
  // Counted over all shards; relay_networks (our own MTAs and applications)
  // are not limited.
  std::string key = trusted ? std::string() : client_key(literal);
  switch (per_client_->try_add(key, cfg_->connections_per_ip_max)) {
    case ConnectionsPerClient::Verdict::kOk:
      break;
    case ConnectionsPerClient::Verdict::kClientFull:
      refuse_connection(fd, "421 4.7.0 Too many connections from your address\r\n");
      note_refusal("client=" + peer + ": connections_per_ip_max (" +
                   std::to_string(cfg_->connections_per_ip_max) + " from " + key + ")");
      return;
    case ConnectionsPerClient::Verdict::kAllFull:
      refuse_connection(fd, kTooManyConnections);
      note_refusal("client=" + peer + ": " + std::to_string(per_client_->total_max()) +
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

void Shard::commit(storage::Spool::Commit* c) {
  last_commit_ms_ = mono_ms();
  spool_->commit(c);
}

void Shard::note_refusal(const std::string& what) {
  const int64_t now = clock_s();
  if (now == refused_log_s_) {
    ++refused_unlogged_;  // one line a second at most, under a flood
    return;
  }
  log_line("connection refused with 421: " + what +
               (refused_unlogged_ > 0
                    ? " (and " + std::to_string(refused_unlogged_) + " more in the last second)"
                    : std::string()),
           LogLevel::kWarning);
  refused_log_s_ = now;
  refused_unlogged_ = 0;
}

size_t Shard::refuse_out_of_descriptors(size_t listener) {
  if (reserve_fd_ < 0) return 0;
  ::close(reserve_fd_);
  reserve_fd_ = -1;
  size_t served = 0;
  // Bounded: the loop must turn again for everything else.
  for (; served < 256; ++served) {
    const int fd = ::accept4(listen_fds_[listener], nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) break;
    refuse_connection(fd, kTooManyConnections);
  }
  reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (served > 0) note_refusal("out of file descriptors (RLIMIT_NOFILE); the reserve one answered");
  return served;
}

void Shard::deliver(DeliveryJob* job) {
  job->shard = this;
  // Nothing for the local mailboxes: straight to the outbound queue.
  if (outbound_ && !stopping_) {
    std::vector<size_t> remote;
    bool any_local = false;
    const auto& rcpts = job->rec.env.rcpts;
    for (size_t i = 0; i < rcpts.size(); ++i) {
      if (i < job->rec.rcpt_done.size() && job->rec.rcpt_done[i] != 0) continue;
      if (is_local_domain(proto::ascii_lower(rcpts[i].domain))) {
        any_local = true;
        break;
      }
      remote.push_back(i);
    }
    if (!any_local && !remote.empty()) {
      log_line("queued id=" + job->rec.env.id + " for outbound delivery (" +
               std::to_string(remote.size()) + " recipients)");
      outbound_->add(std::move(job->rec), std::move(remote),
                     static_cast<int64_t>(std::time(nullptr)));
      delete job;
      return;
    }
  }
  // A retry already waited; only a first attempt is deferred behind a burst.
  job->queued_ms = job->attempts == 0 ? mono_ms() : 0;
  job->done = &Shard::on_delivered;
  const size_t bytes = job->rec.message.size();
  if (queued_bytes_ + bytes > cfg_->delivery_backlog_bytes_max) {
    std::string().swap(job->rec.message);  // read back from the spool later
  } else {
    queued_bytes_ += bytes;
  }
  delivery_queue_.push_back(job);
  start_deliveries();
}

void Shard::retry_later(DeliveryJob* job) {
  retrying_.insert(job);
  job->retry.job = job;
  job->retry.fire = [](TimerEntry* t) {
    DeliveryJob* dj = static_cast<DeliveryJob::Retry*>(t)->job;
    dj->shard->retrying_.erase(dj);
    dj->shard->deliver(dj);
  };
  wheel_.schedule(&job->retry, clock_s() + cfg_->delivery_retry_s);
}

void Shard::start_deliveries() {
  const int64_t now = mono_ms();
  const bool accepting = now - last_commit_ms_ < kAcceptingWindowMs;
  deliveries_deferred_ = false;
  // While stopping, queued deliveries stay in the spool for the next start.
  while (!stopping_ && !delivery_queue_.empty() &&
         deliveries_inflight_ < cfg_->delivery_concurrency) {
    DeliveryJob* job = delivery_queue_.front();
    if (accepting && now - job->queued_ms < cfg_->delivery_defer_ms) {
      deliveries_deferred_ = true;  // the loop comes back within a few ms
      break;
    }
    delivery_queue_.pop_front();
    if (job->rec.message.empty()) {
      if (int r = spool_->load(job->rec); r < 0) {
        log_line("delivery id=" + job->rec.env.id +
                 " cannot read the message back from the spool (" + std::strerror(-r) +
                 "), retry in " + std::to_string(cfg_->delivery_retry_s) + "s");
        retry_later(job);
        continue;
      }
    } else {
      queued_bytes_ -= job->rec.message.size();
    }
    ++deliveries_inflight_;
    if (start_pipes(job)) continue;  // the Maildirs after the commands
    maildir_->deliver(job);
  }
}

namespace {

// The pipe-alias recipients of one delivery job and what their commands did.
struct PipeOp : storage::BlockingOp {
  struct Rcpt {
    size_t index;
    std::vector<std::string> commands;  // pipe aliases, or the domain's MDA
    std::string lmtp_socket;            // or the domain's LMTP server
    const char* via = "pipe";           // for the log: pipe, mda, lmtp
    PipeOutcome outcome;
  };
  DeliveryJob* job = nullptr;
  std::vector<Rcpt> rcpts;
  int timeout_s = 0;
  std::string hostname;  // LHLO
  struct Done final : Completion {
    PipeOp* op = nullptr;
    void complete(const Event&) override { op->done(op, 0); }
  } wake;
};

int run_pipes(storage::BlockingOp* o) {
  auto* op = static_cast<PipeOp*>(o);
  const proto::Envelope& env = op->job->rec.env;
  for (auto& r : op->rcpts) {
    const proto::Address& a = env.rcpts[r.index];
    if (!r.lmtp_socket.empty()) {
      r.outcome = lmtp_deliver(r.lmtp_socket, op->hostname, env.from.to_string(), a.to_string(),
                               op->job->rec.message, op->timeout_s);
      continue;
    }
    // LF line endings, and the trace fields a Maildir copy gets.
    std::string text = storage::MaildirDelivery::render(env, r.index, op->job->rec.message);
    const std::vector<std::pair<std::string, std::string>> vars = {{"SENDER", env.from.to_string()},
                                                                   {"RECIPIENT", a.to_string()},
                                                                   {"USER", a.local},
                                                                   {"DOMAIN", a.domain},
                                                                   {"QUEUE_ID", env.id}};
    for (const auto& cmd : r.commands) {
      r.outcome = run_pipe(cmd, text, vars, op->timeout_s);
      if (r.outcome.kind != PipeOutcome::Kind::kOk) break;
    }
  }
  return 0;
}

}  // namespace

bool Shard::start_pipes(DeliveryJob* job) {
  const storage::Domains* domains = policy_.domains();
  if (domains == nullptr) return false;
  auto op = std::make_unique<PipeOp>();
  const auto& rcpts = job->rec.env.rcpts;
  for (size_t i = 0; i < rcpts.size(); ++i) {
    if (i < job->rec.rcpt_done.size() && job->rec.rcpt_done[i] != 0) continue;
    const std::string domain = proto::ascii_lower(rcpts[i].domain);
    if (!domains->is_local_domain(domain)) continue;
    const proto::Resolution r = domains->resolve(rcpts[i].local, domain);
    PipeOp::Rcpt pr{i, {}, {}, "pipe", {}};
    for (const auto& d : r.destinations) {
      // Stored for its alias: "<alias>@<domain>" is the pipe itself.
      if (d.kind == proto::Destination::Kind::kPipe &&
          proto::iequals(d.address, rcpts[i].to_string())) {
        pr.commands.push_back(d.command);
      }
    }
    // A mailbox of a domain whose mail goes to an MDA or an LMTP server.
    const storage::DomainDelivery& dd = domains->delivery(domain);
    if (pr.commands.empty() && dd.kind == storage::DomainDelivery::Kind::kMda) {
      pr.commands.push_back(dd.mda);
      pr.via = "mda";
    }
    if (pr.commands.empty() && dd.kind == storage::DomainDelivery::Kind::kLmtp) {
      pr.lmtp_socket = dd.lmtp_socket;
      pr.via = "lmtp";
    }
    if (!pr.commands.empty() || !pr.lmtp_socket.empty()) op->rcpts.push_back(std::move(pr));
  }
  if (op->rcpts.empty()) return false;
  if (!pipe_pool_) pipe_pool_ = std::make_unique<BlockingPool>(2);
  op->job = job;
  op->timeout_s = static_cast<int>(cfg_->pipe_timeout_s);
  op->hostname = cfg_->hostname;
  op->kind = storage::BlockingOp::Kind::kCall;
  op->work = &run_pipes;
  op->done = [](storage::BlockingOp* o, int) {
    std::unique_ptr<PipeOp> op(static_cast<PipeOp*>(o));
    DeliveryJob* job = op->job;
    Shard* self = job->shard;
    const auto& env = job->rec.env;
    bool again = false;
    if (job->rec.rcpt_done.size() < env.rcpts.size())
      job->rec.rcpt_done.resize(env.rcpts.size(), 0);
    for (const auto& r : op->rcpts) {
      const std::string to = " to=<" + env.rcpts[r.index].to_string() + "> " + r.via;
      switch (r.outcome.kind) {
        case PipeOutcome::Kind::kOk:
          log_line("delivered id=" + env.id + to);
          job->rec.rcpt_done[r.index] = 1;
          self->spool_->recipient_done(job->rec, r.index, false);
          break;
        case PipeOutcome::Kind::kTemporary:
          log_line("delivery id=" + env.id + to + " deferred: " + r.outcome.detail);
          self->stats_.local_deferred.fetch_add(1, std::memory_order_relaxed);
          again = true;
          break;
        case PipeOutcome::Kind::kPermanent: {
          log_line("delivery id=" + env.id + to + " failed permanently: " + r.outcome.detail);
          self->stats_.local_failed.fetch_add(1, std::memory_order_relaxed);
          job->rec.rcpt_done[r.index] = 1;
          OutboundQueue::Bounce b;
          b.rec = job->rec;
          b.failed.push_back(
              {r.index,
               proto::SmtpClient::RcptResult{
                   proto::Outcome::kPerm, "550 5.3.0 Local delivery failed: " + r.outcome.detail}});
          b.remote_host = self->cfg_->hostname;
          if (!env.from.is_null()) self->queue_dsn(std::move(b), [](bool) {});
          self->spool_->recipient_done(job->rec, r.index, true);
          break;
        }
      }
    }
    if (again) {
      --self->deliveries_inflight_;
      if (self->stopping_) {
        delete job;  // stays in the spool; recovered at the next start
      } else {
        self->retry_later(job);
      }
      self->start_deliveries();
      return;
    }
    self->maildir_->deliver(job);
  };
  op->wake.op = op.get();
  ++pipes_inflight_;
  pipe_pool_->submit(op.get(), &op->wake);
  op.release();
  return true;
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
  in.now_unix = static_cast<int64_t>(std::time(nullptr));
  in.delayed = b.delayed;
  in.retry_until_unix = b.retry_until_unix;
  for (const auto& [idx, res] : b.failed) {
    in.recipients.push_back(
        proto::DsnRecipient{b.rec.env.rcpts[idx], "", res.reply, b.remote_host});
  }
  in.original = b.rec.message;
  auto* c = new DsnCommit();
  c->shard = this;
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
    log_line("bounce id=" + d->envelope.id + " for " + d->envelope.rcpts[0].to_string() +
             (ok ? " queued" : " not queued (will try again)"));
    if (ok) {
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
        log_line("bounce id=" + d->envelope.id + ": DKIM signing failed (" + j->error +
                     "), sent unsigned",
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

void Shard::on_delivered(storage::MaildirDelivery::Job* j, int result) {
  auto* job = static_cast<DeliveryJob*>(j);
  Shard* self = job->shard;
  --self->deliveries_inflight_;
  self->start_deliveries();
  ++job->attempts;
  const auto& env = job->rec.env;
  for (const auto& r : job->skipped) {
    log_line("delivery id=" + env.id + " to=<" + r + "> failed permanently: not a valid mailbox");
    self->stats_.local_failed.fetch_add(1, std::memory_order_relaxed);
  }
  if (result < 0) {
    self->stats_.local_deferred.fetch_add(1, std::memory_order_relaxed);
    log_line("delivery id=" + env.id + " deferred (" + std::strerror(-result) + "), retry in " +
             std::to_string(self->cfg_->delivery_retry_s) + "s");
    if (self->stopping_) {
      delete job;  // stays in the spool; recovered at the next start
      return;
    }
    self->retry_later(job);
    return;
  }
  if (!job->remote.empty()) {
    // The local recipients are delivered; the others go to the outbound queue.
    std::vector<size_t> remote;
    for (size_t i = 0; i < env.rcpts.size(); ++i) {
      if (i < job->rec.rcpt_done.size() && job->rec.rcpt_done[i] != 0) continue;
      if (self->is_local_domain(proto::ascii_lower(env.rcpts[i].domain))) {
        self->spool_->recipient_done(job->rec, i, false);
        continue;
      }
      remote.push_back(i);
    }
    std::string to;
    for (const auto& r : job->remote) to += (to.empty() ? "<" : ", <") + r + ">";
    if (self->outbound_ && !self->stopping_) {
      log_line("queued id=" + env.id + " for outbound delivery to " + to);
      self->outbound_->add(std::move(job->rec), std::move(remote),
                           static_cast<int64_t>(std::time(nullptr)));
    } else {
      log_line("queued id=" + env.id + " for outbound delivery to " + to +
               " (not now: it stays in the spool)");
    }
    delete job;
    return;
  }
  self->stats_.messages_delivered.fetch_add(1, std::memory_order_relaxed);
  log_line("delivered id=" + env.id + " rcpts=" + std::to_string(env.rcpts.size()) + " maildir");
  delete job;
}

}  // namespace ringmail::engine
