#include "engine/outbound_dispatch.h"

#include <algorithm>
#include <ctime>

#include "engine/log.h"

namespace ringmail::engine {

uint32_t owner_shard(const std::string& domain, uint32_t shards) {
  if (shards <= 1) return 0;
  // FNV-1a: stable across runs and builds (std::hash is not promised to be).
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : domain) h = (h ^ c) * 0x100000001b3ULL;
  return static_cast<uint32_t>(h % shards);
}

OutboundDispatcher::OutboundDispatcher(Deps deps, config::OutboundConfig cfg)
    : d_(std::move(deps)), cfg_(std::move(cfg)) {}

OutboundDispatcher::~OutboundDispatcher() { stop(); }

void OutboundDispatcher::reconfigure(config::OutboundConfig cfg) {
  cfg_ = std::move(cfg);
  route_tls_.clear();
  dirty_ = true;
}

void OutboundDispatcher::submit(OutboundBatch* b) {
  ++held_;
  b->unfinished = b->msgs.size();
  if (b->msgs.empty()) {
    one_done(b);
    return;
  }
  if (stopping_) {
    for (OutboundMessage* m : b->msgs) {
      settle(Waiting{m, b}, proto::Outcome::kTemp, "delivery interrupted by a shutdown");
    }
    return;
  }
  Dest& d = dests_[b->domain];
  for (OutboundMessage* m : b->msgs) d.waiting.push_back(Waiting{m, b});
  dirty_ = true;
}

void OutboundDispatcher::settle(const Waiting& w, proto::Outcome o, const std::string& why,
                                bool dns_failed) {
  w.msg->results.assign(w.msg->rcpts.size(), proto::SmtpClient::RcptResult{o, why});
  w.msg->dns_failed = dns_failed;
  w.msg->remote_host.clear();
  w.msg->used_tls = w.msg->tls_verified = false;
  one_done(w.batch);
}

void OutboundDispatcher::one_done(OutboundBatch* b) {
  if (b->unfinished > 0) --b->unfinished;
  if (b->unfinished > 0) return;
  --held_;
  if (d_.complete) d_.complete(b);
}

bool OutboundDispatcher::take_token(const std::string& domain, Dest& d) {
  const uint32_t rate = cfg_.rate_for(cfg_.route_for(domain));
  if (rate == 0) return true;
  // A bucket of one second's worth (at least one message), refilled
  // continuously.
  const double cap = std::max(1.0, rate / 60.0);
  const int64_t now = d_.clock->mono_ms();
  if (d.tokens < 0) {
    d.tokens = cap;
  } else {
    d.tokens = std::min(cap, d.tokens + static_cast<double>(now - d.refill_ms) * rate / 60000.0);
  }
  d.refill_ms = now;
  if (d.tokens < 1.0) return false;
  d.tokens -= 1.0;
  return true;
}

std::shared_ptr<const tls::TlsContext> OutboundDispatcher::context_for(
    const config::OutboundRoute* r) {
  using Tls = config::OutboundRoute::Tls;
  const Tls mode = r != nullptr ? r->tls : Tls::kOpportunistic;
  if (mode == Tls::kNone || (mode == Tls::kOpportunistic && !cfg_.starttls)) return nullptr;
  // Opportunistic and "required" take any certificate: the shared context
  // that checks none.
  if (mode != Tls::kVerify) return d_.tls;
  // "verify": a verifying context, never the shared one (a context must
  // not mix verifying and opportunistic sessions: see tls/context.h).
  auto it = route_tls_.find(r->ca_file);
  if (it != route_tls_.end()) return it->second;
  std::shared_ptr<const tls::TlsContext> c;
  if (auto made = tls::TlsContext::client(tls::TlsContext::ClientMode::kVerify, r->ca_file)) {
    c = std::move(*made);
  } else {
    log_line("outbound: route for " + r->domain + ": " + made.error());
  }
  route_tls_[r->ca_file] = c;
  return c;
}

void OutboundDispatcher::service() {
  if (!dirty_) return;
  dirty_ = false;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    Session* s = it->get();
    if (s->done && s->s->finished()) {
      finished(s);
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
  if (stopping_) return;
  for (auto it = dests_.begin(); it != dests_.end();) {
    Dest& d = it->second;
    const uint32_t limit = cfg_.connections_for(cfg_.route_for(it->first));
    while (!d.waiting.empty() && d.sessions < limit && take_token(it->first, d)) {
      start_session(it->first, d);
    }
    // Forgotten when nothing waits; a rate-limited one once its bucket is
    // surely full again.
    if (d.waiting.empty() && d.sessions == 0 &&
        (d.tokens < 0 || d_.clock->mono_ms() - d.refill_ms > 60000)) {
      it = dests_.erase(it);
    } else {
      ++it;
    }
  }
}

void OutboundDispatcher::start_session(const std::string& domain, Dest& d) {
  const config::OutboundRoute* r = cfg_.route_for(domain);
  OutboundSession::Params params;
  params.helo = d_.helo;
  params.self = d_.helo;
  params.port = r != nullptr && r->port != 0 ? r->port : cfg_.port;
  params.connect_timeout_s = cfg_.connect_timeout_s;
  params.command_timeout_s = cfg_.command_timeout_s;
  params.tls = context_for(r);
  params.source_v4 = cfg_.source_v4;
  params.source_v6 = cfg_.source_v6;
  params.tls_counters = d_.tls_counters;
  if (r != nullptr) {
    params.next_hop = r->host;
    params.require_tls = r->tls == config::OutboundRoute::Tls::kRequired ||
                         r->tls == config::OutboundRoute::Tls::kVerify;
    params.verify_tls = r->tls == config::OutboundRoute::Tls::kVerify;
    params.auth_user = r->auth_user;
    params.auth_password = r->auth_password;
  }
  auto s = std::make_unique<Session>();
  Session* raw = s.get();
  raw->domain = domain;
  // The first message is taken now (the token was just spent for it).
  raw->taken.push_back(d.waiting.front());
  d.waiting.pop_front();
  raw->given = 1;
  bool first = true;
  raw->s = std::make_unique<OutboundSession>(
      *d_.backend, *d_.resolver, std::move(params), domain,
      [this, raw, first]() mutable -> OutboundMessage* {
        if (first) {
          first = false;
          return raw->taken.front().msg;
        }
        return pull(raw);
      },
      [this, raw](OutboundMessage* m) { result(raw, m); },
      [this, raw] {
        raw->done = true;
        dirty_ = true;
      });
  ++d.sessions;
  ++sessions_started_;
  sessions_.push_back(std::move(s));
  raw->s->start();
}

OutboundMessage* OutboundDispatcher::pull(Session* s) {
  if (stopping_) return nullptr;
  auto it = dests_.find(s->domain);
  if (it == dests_.end() || it->second.waiting.empty()) return nullptr;
  if (s->given >= cfg_.messages_per_connection_for(cfg_.route_for(s->domain))) return nullptr;
  if (!take_token(s->domain, it->second)) return nullptr;
  const Waiting w = it->second.waiting.front();
  it->second.waiting.pop_front();
  s->taken.push_back(w);
  ++s->given;
  return w.msg;
}

void OutboundDispatcher::result(Session* s, OutboundMessage* m) {
  for (auto it = s->taken.begin(); it != s->taken.end(); ++it) {
    if (it->msg == m) {
      OutboundBatch* b = it->batch;
      s->taken.erase(it);
      one_done(b);
      return;
    }
  }
}

void OutboundDispatcher::finished(Session* s) {
  auto it = dests_.find(s->domain);
  if (it == dests_.end()) return;
  Dest& d = it->second;
  if (d.sessions > 0) --d.sessions;
  // Unreachable right now (DNS, every address refused, null MX...): the
  // rest of the domain's mail gets the same answer, unless another
  // session is getting through.
  if (s->s->gave_up() && !s->s->connected_ever()) {
    bool others = false;
    for (auto& o : sessions_) {
      others |= o.get() != s && o->domain == s->domain && !o->done && o->s->connected_ever();
    }
    if (!others) {
      std::deque<Waiting> w;
      w.swap(d.waiting);
      for (const Waiting& x : w) {
        settle(x, s->s->gave_up_outcome(), s->s->gave_up_reason(), s->s->gave_up_dns());
      }
    }
  }
  dirty_ = true;
}

void OutboundDispatcher::tick() {
  const int64_t mono = monotonic_s();
  for (auto& s : sessions_) {
    if (!s->done) s->s->tick(mono);
  }
  dirty_ = true;  // tokens refill
  service();
}

void OutboundDispatcher::stop() {
  if (stopping_) return;
  stopping_ = true;
  for (auto& [domain, d] : dests_) {
    std::deque<Waiting> w;
    w.swap(d.waiting);
    for (const Waiting& x : w)
      settle(x, proto::Outcome::kTemp, "delivery interrupted by a shutdown");
  }
  for (auto& s : sessions_) {
    if (!s->done) s->s->abort();
  }
  dirty_ = true;
}

}  // namespace ringmail::engine
