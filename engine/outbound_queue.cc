#include "engine/outbound_queue.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>

#include "engine/log.h"
#include "engine/outbound_dispatch.h"

namespace ringmail::engine {

namespace {

std::string domain_of(const proto::Address& a) { return proto::ascii_lower(a.domain); }

bool contains(const std::vector<size_t>& v, size_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

void erase_value(std::vector<size_t>& v, size_t x) {
  v.erase(std::remove(v.begin(), v.end(), x), v.end());
}

}  // namespace

OutboundQueue::~OutboundQueue() { stop(); }

void OutboundQueue::load_for_dsn(storage::SpoolRecord& rec) {
  if (const int r = d_.spool->load(rec); r < 0) {
    log_line(rec.env.id + ": cannot read the message back from the spool (" + std::strerror(-r) +
                 "): its DSN goes without the original header",
             LogLevel::kWarning);
  }
}

void OutboundQueue::add(storage::SpoolRecord rec, std::vector<size_t> indices, int64_t now_s) {
  auto up = std::make_unique<Item>();
  Item* it = up.get();
  it->rec = std::move(rec);
  if (held_bytes_ + it->rec.message.size() > d_.held_bytes_max) {
    std::string().swap(it->rec.message);  // read back when its attempt starts
  } else {
    it->held = it->rec.message.size();
    held_bytes_ += it->held;
  }
  it->size = it->rec.message.empty() ? it->rec.length : it->rec.message.size();
  it->mine = indices;
  it->pending = std::move(indices);
  items_.push_back(std::move(up));
  it->self = std::prev(items_.end());
  by_id_[it->rec.env.id] = it;
  arrivals_.insert(it->rec.env.arrival_unix);
  update_gauges();
  schedule(it, it->rec.next_attempt_unix > now_s ? it->rec.next_attempt_unix : now_s);
}

void OutboundQueue::schedule(Item* it, int64_t when) {
  it->attempted = false;
  it->next_at = when;
  dirty_ = true;
  if (it->rec.held) return;  // parked until released
  it->scheduled = true;
  it->sched = schedule_.emplace(when, it);
}

void OutboundQueue::unschedule(Item* it) {
  if (!it->scheduled) return;
  schedule_.erase(it->sched);
  it->scheduled = false;
}

int64_t OutboundQueue::dns_retry(uint32_t retries) const {
  constexpr int64_t kDnsRetryFirstS = 5;
  if (retries > 16) return 0;
  const int64_t d = kDnsRetryFirstS << retries;
  return d < static_cast<int64_t>(cfg_.retry_first_s) ? d : 0;
}

int64_t OutboundQueue::backoff(uint32_t attempts) {
  uint64_t d = cfg_.retry_first_s;
  for (uint32_t i = 1; i < attempts && d < cfg_.retry_max_s; ++i) d *= 2;
  if (d > cfg_.retry_max_s) d = cfg_.retry_max_s;
  // +-10% so that messages that failed together do not retry together.
  jitter_state_ = jitter_state_ * 6364136223846793005ULL + 1442695040888963407ULL;
  const int64_t span = static_cast<int64_t>(d / 5) + 1;
  return static_cast<int64_t>(d) - span / 2 +
         static_cast<int64_t>((jitter_state_ >> 33) % static_cast<uint64_t>(span));
}

void OutboundQueue::tick(int64_t now_s) {
  dirty_ = true;  // retries may have come due
  service(now_s);
}

void OutboundQueue::batch_done(OutboundBatch* b) {
  for (auto& x : batches_) {
    if (&x->b == b) x->done = true;
  }
  dirty_ = true;
}

void OutboundQueue::service(int64_t now_s) {
  if (!dirty_) return;
  dirty_ = false;
  for (auto it = batches_.begin(); it != batches_.end();) {
    if ((*it)->done) {
      Batch* b = it->get();
      finish(b, now_s);
      it = batches_.erase(it);
    } else {
      ++it;
    }
  }
  if (stopping_) return;
  // Items whose time has come become due for each of their domains.
  while (!schedule_.empty() && schedule_.begin()->first <= now_s) {
    Item* it = schedule_.begin()->second;
    schedule_.erase(schedule_.begin());
    it->scheduled = false;
    make_due(it, now_s);
  }
  std::vector<Batch*> sent;
  for (auto d = due_.begin(); d != due_.end();) {
    if (suspended(d->first, now_s)) {  // its mail waits here until then
      ++d;
      continue;
    }
    // At most what the destination's connections carry in one round is
    // out at a time; the rest waits here, its bytes maybe on disk only.
    const config::OutboundRoute* r = cfg_.route_for(d->first);
    const size_t cap =
        static_cast<size_t>(cfg_.connections_for(r)) * cfg_.messages_per_connection_for(r);
    auto o = out_per_domain_.find(d->first);
    const size_t out = o == out_per_domain_.end() ? 0 : o->second;
    if (out < cap && !d->second.empty()) {
      Batch* b = send_batch(d->first, d->second, std::min(d->second.size(), cap - out), now_s);
      if (b != nullptr) sent.push_back(b);
    }
    d = d->second.empty() ? due_.erase(d) : std::next(d);
  }
  // Then out they go (a dispatcher on this shard may answer at once).
  for (Batch* b : sent) d_.dispatch(&b->b);
}

void OutboundQueue::make_due(Item* it, int64_t now_s) {
  if (!it->pending.empty() &&
      now_s - it->rec.env.arrival_unix >= static_cast<int64_t>(cfg_.expire_s)) {
    if (d_.counters) d_.counters->bounced.fetch_add(it->pending.size(), std::memory_order_relaxed);
    for (size_t idx : it->pending) {
      log_line(it->rec.env.id + ":" + log_recipient(it->rec.env, idx) + " status=expired after " +
               std::to_string(now_s - it->rec.env.arrival_unix) + "s and " +
               std::to_string(it->rec.attempts) + " attempts; bounced");
      if (d_.events) {
        const auto last = it->last_reply.find(idx);
        Events::Detail d;
        d.attempt = it->rec.attempts;
        if (last != it->last_reply.end()) d.reply = last->second;
        d_.events->record(Events::Type::kExpiration, it->rec.env, idx, d, now_s);
      }
      it->to_bounce.push_back(
          {idx, proto::SmtpClient::RcptResult{proto::Outcome::kPerm,
                                              "delivery failed for " +
                                                  std::to_string(cfg_.expire_s / 86400) +
                                                  " days; the message expired"}});
    }
    it->pending.clear();
  }
  if (!it->pending.empty() && cfg_.delay_warning_s != 0 && !it->rec.delay_warned &&
      it->rec.attempts > 0 &&
      now_s - it->rec.env.arrival_unix >= static_cast<int64_t>(cfg_.delay_warning_s)) {
    warn_delayed(it, now_s);
  }
  std::vector<std::string> seen;
  for (size_t idx : it->pending) {
    std::string d = domain_of(it->rec.env.rcpts[idx]);
    if (std::find(seen.begin(), seen.end(), d) != seen.end()) continue;
    due_[d].push_back(it);
    ++it->due_in;
    seen.push_back(std::move(d));
  }
  if (it->due_in == 0) settle(it, now_s);  // nothing to send: bounces, or finished
}

OutboundQueue::Batch* OutboundQueue::send_batch(const std::string& domain, std::deque<Item*>& due,
                                                size_t n, int64_t now_s) {
  auto b = std::make_unique<Batch>();
  b->b.home = d_.shard;
  b->b.domain = domain;
  std::vector<Item*> unreadable, skipped;
  for (size_t k = 0; k < n; ++k) {
    Item* it = due.front();
    due.pop_front();
    --it->due_in;
    // Held, or its recipients there deleted, since it became due.
    const bool any = std::any_of(it->pending.begin(), it->pending.end(), [&](size_t idx) {
      return domain_of(it->rec.env.rcpts[idx]) == domain;
    });
    if (it->rec.held || !any) {
      skipped.push_back(it);
      continue;
    }
    it->attempted = true;
    if (it->rec.message.empty() && d_.spool->load(it->rec) < 0) {
      // Counts as a failed attempt: tried again after a backoff.
      log_line(it->rec.env.id + ": cannot read the message back from the spool", LogLevel::kError);
      unreadable.push_back(it);
      continue;
    }
    // One transaction for the recipients at this domain, or with VERP
    // one each, under its own return path.
    bool verp = d_.verp_sender && !it->rec.env.from.is_null();
    std::unique_ptr<Part> p;
    for (size_t idx : it->pending) {
      if (domain_of(it->rec.env.rcpts[idx]) != domain) continue;
      proto::Address verp_from;
      if (verp) {
        verp_from = d_.verp_sender(it->rec.env, idx);
        verp = !verp_from.is_null();  // off (a reload), or no key
      }
      if (!p || verp) {
        if (p) {
          ++it->out;
          b->b.msgs.push_back(&p->msg);
          b->parts.push_back(std::move(p));
        }
        p = std::make_unique<Part>();
        p->item = it;
        p->msg.id = it->rec.env.id;
        p->msg.from = verp                 ? verp_from
                      : d_.envelope_sender ? d_.envelope_sender(it->rec.env.from)
                                           : it->rec.env.from;
        p->msg.data = it->rec.message;
        p->msg.smtputf8 = it->rec.env.smtputf8;
        p->msg.body_8bit = it->rec.env.body_8bit;
      }
      p->indices.push_back(idx);
      p->msg.rcpts.push_back(it->rec.env.rcpts[idx]);
      it->flying.push_back(idx);
    }
    ++it->out;
    b->b.msgs.push_back(&p->msg);
    b->parts.push_back(std::move(p));
  }
  for (Item* it : unreadable) settle(it, now_s);
  for (Item* it : skipped) settle(it, now_s);
  if (b->parts.empty()) return nullptr;
  out_per_domain_[domain] += b->parts.size();
  b->sent = std::chrono::steady_clock::now();
  batches_.push_back(std::move(b));
  return batches_.back().get();
}

void OutboundQueue::finish(Batch* s, int64_t now_s) {
  auto od = out_per_domain_.find(s->b.domain);
  if (od != out_per_domain_.end()) {
    od->second -= std::min(od->second, s->parts.size());
    if (od->second == 0) out_per_domain_.erase(od);
  }
  const double took_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - s->sent).count();
  for (auto& p : s->parts) {
    Item* it = p->item;
    if (d_.counters) d_.counters->attempt_s.observe(took_s);
    for (size_t k = 0; k < p->indices.size(); ++k) {
      const size_t idx = p->indices[k];
      const auto& res = p->msg.results[k];
      erase_value(it->flying, idx);
      // Deleted or bounced by the administrator while it was out.
      if (!contains(it->pending, idx)) continue;
      // One line per recipient and attempt (docs/logging.md).
      const auto attempt_line = [&](const char* status) {
        const storage::SpoolRecord& r = it->rec;
        std::string line = r.env.id + ":" + log_recipient(r.env, idx) +
                           " relay=" + (p->msg.remote_host.empty() ? "none" : p->msg.remote_host);
        if (!p->msg.remote_addr.empty()) line += "[" + p->msg.remote_addr + "]";
        if (!p->msg.tls.empty()) {
          line +=
              " tls=" + p->msg.tls + (p->msg.tls_verified ? " cert=verified" : " cert=unverified");
        }
        line += " delay=" + std::to_string(std::max<int64_t>(0, now_s - r.env.arrival_unix)) +
                "s attempt=" + std::to_string(r.attempts + 1) + " status=" + status + " (" +
                res.reply + ")";
        return line;
      };
      const auto event = [&](Events::Type type) {
        if (!d_.events) return;
        Events::Detail d;
        d.size = it->rec.length;
        d.attempt = it->rec.attempts + 1;
        d.peer_name = p->msg.remote_host;
        d.peer_address = p->msg.remote_addr;
        d.tls = p->msg.tls;
        d.reply = res.reply;
        d_.events->record(type, it->rec.env, idx, d, now_s);
      };
      switch (res.outcome) {
        case proto::Outcome::kOk:
          log_line(attempt_line("delivered"));
          event(Events::Type::kDelivery);
          if (d_.counters) d_.counters->delivered.fetch_add(1, std::memory_order_relaxed);
          if (d_.counters) d_.counters->queue_s.observe(double(now_s - it->rec.env.arrival_unix));
          d_.spool->recipient_done(it->rec, idx, false);
          mark(it, idx, 'd');
          erase_value(it->pending, idx);
          break;
        case proto::Outcome::kPerm:
          log_line(attempt_line("bounced"));
          event(Events::Type::kBounce);
          if (d_.hard_bounce) d_.hard_bounce(it->rec.env, idx, res.reply);
          if (d_.counters) {
            d_.counters->failed.fetch_add(1, std::memory_order_relaxed);
            d_.counters->bounced.fetch_add(1, std::memory_order_relaxed);
            d_.counters->failed_by[size_t(res.cause)].fetch_add(1, std::memory_order_relaxed);
          }
          it->to_bounce.push_back({idx, res});
          it->bounce_host = p->msg.remote_host;
          mark(it, idx, 'b');
          erase_value(it->pending, idx);
          break;
        case proto::Outcome::kTemp:
          log_line(attempt_line("deferred"));
          event(Events::Type::kTransientFailure);
          if (d_.counters) d_.counters->deferred.fetch_add(1, std::memory_order_relaxed);
          if (d_.counters) d_.counters->deferred_by[size_t(res.cause)].fetch_add(1);
          it->last_reply[idx] = res.reply;
          it->last_reply_unix = now_s;
          (p->msg.dns_failed ? it->dns_deferred : it->other_deferred) = true;
          break;
      }
    }
    --it->out;
    settle(it, now_s);
  }
}

void OutboundQueue::settle(Item* it, int64_t now_s) {
  // Only once every part of this attempt is back (one DSN for what failed
  // in it), and not while a DSN is being queued.
  if (it->out > 0 || it->due_in > 0 || it->bouncing || it->scheduled) return;
  if (!it->to_bounce.empty()) {
    if (it->rec.env.from.is_null()) {
      // RFC 3464 2.0... a bounce never goes to the null sender.
      for (auto& [idx, res] : it->to_bounce) {
        log_line(it->rec.env.id + ":" + log_recipient(it->rec.env, idx) +
                 ": no DSN: the sender is <>");
        d_.spool->recipient_done(it->rec, idx, true);
      }
      it->to_bounce.clear();
    } else if (d_.bounce) {
      it->bouncing = true;
      ++bounces_in_flight_;
      if (it->rec.message.empty()) load_for_dsn(it->rec);
      Bounce b{it->rec, it->to_bounce, it->bounce_host};
      d_.bounce(std::move(b), [this, it](bool ok) {
        --bounces_in_flight_;
        it->bouncing = false;
        const int64_t now = d_.clock->wall_s();
        if (ok) {
          for (auto& [idx, res] : it->to_bounce) d_.spool->recipient_done(it->rec, idx, true);
          it->to_bounce.clear();
          settle(it, now);
        } else {
          schedule(it, now + static_cast<int64_t>(cfg_.retry_first_s));  // the DSN again, later
        }
      });
      return;
    }
  }
  if (!it->pending.empty()) {
    // A shutdown's interruption is not an attempt: the message is tried
    // again right after the restart, not after a backoff.
    if (stopping_) return;
    const bool dns_only = it->dns_deferred && !it->other_deferred;
    it->dns_deferred = it->other_deferred = false;
    if (!dns_only) it->dns_retries = 0;
    if (it->attempted && dns_only) {
      if (const int64_t wait = dns_retry(it->dns_retries); wait > 0) {
        ++it->dns_retries;
        log_line(it->rec.env.id + ": DNS failed for now, not the destination: " +
                 "trying again in " + std::to_string(wait) + "s");
        schedule(it, now_s + wait);
        return;
      }
      // It has lasted: the usual backoff from here, until a server answers.
    }
    if (it->attempted) {
      ++it->rec.attempts;
      const int64_t when = now_s + backoff(it->rec.attempts);
      d_.spool->retry_at(it->rec, it->rec.attempts, when);
      schedule(it, when);
    } else {
      schedule(it, now_s);
    }
    return;
  }
  d_.spool->delivered(it->rec);  // every recipient is finished
  if (d_.counters) d_.counters->finished.fetch_add(1, std::memory_order_relaxed);
  held_bytes_ -= it->held;
  if (auto a = arrivals_.find(it->rec.env.arrival_unix); a != arrivals_.end()) arrivals_.erase(a);
  by_id_.erase(it->rec.env.id);
  items_.erase(it->self);
  update_gauges();
}

void OutboundQueue::update_gauges() {
  if (d_.counters == nullptr) return;
  d_.counters->queued.store(items_.size(), std::memory_order_relaxed);
  d_.counters->oldest_arrival_unix.store(arrivals_.empty() ? 0 : *arrivals_.begin(),
                                         std::memory_order_relaxed);
}

void OutboundQueue::stop() { stopping_ = true; }

void OutboundQueue::warn_delayed(Item* it, int64_t now_s) {
  it->rec.delay_warned = true;
  if (it->rec.env.from.is_null() || !d_.bounce) {
    d_.spool->delay_warned(it->rec);
    return;
  }
  Bounce b;
  b.rec = it->rec;
  if (b.rec.message.empty()) load_for_dsn(b.rec);
  b.delayed = true;
  b.retry_until_unix = it->rec.env.arrival_unix + static_cast<int64_t>(cfg_.expire_s);
  for (size_t idx : it->pending) {
    auto r = it->last_reply.find(idx);
    b.failed.push_back({idx, proto::SmtpClient::RcptResult{
                                 proto::Outcome::kTemp,
                                 r == it->last_reply.end() ? "not delivered yet" : r->second}});
  }
  log_line(it->rec.env.id + ": delayed for " +
           std::to_string((now_s - it->rec.env.arrival_unix) / 60) +
           " minutes; warning the sender");
  ++bounces_in_flight_;
  // Only the id is needed afterwards: the item may be gone by then.
  storage::SpoolRecord ref;
  ref.env.id = it->rec.env.id;
  d_.bounce(std::move(b), [this, ref](bool ok) {
    --bounces_in_flight_;
    if (ok) d_.spool->delay_warned(ref);  // else warned once more after a restart
  });
}

void OutboundQueue::mark(Item* it, size_t idx, char state) {
  auto& v = it->rec.rcpt_done;
  if (v.size() < it->rec.env.rcpts.size()) v.resize(it->rec.env.rcpts.size(), 0);
  if (idx < v.size()) v[idx] = state;
}

char OutboundQueue::state_of(const Item* it, size_t idx) {
  return idx < it->rec.rcpt_done.size() ? it->rec.rcpt_done[idx] : 0;
}

bool OutboundQueue::suspended(const std::string& domain, int64_t now_s) const {
  auto s = suspended_.find(domain);
  return s != suspended_.end() && s->second > now_s;
}

size_t OutboundQueue::age_bucket(int64_t age_s) {
  size_t b = 0;
  for (int64_t limit = 5 * 60; b + 1 < kAgeBuckets && age_s >= limit; limit *= 2) ++b;
  return b;
}

bool OutboundQueue::matches(const Item* it, const Filter& f) const {
  if (f.arrived_before != 0 && it->rec.env.arrival_unix >= f.arrived_before) return false;
  if (f.by_sender && address_key(it->rec.env.from) != f.sender) return false;
  switch (f.state) {
    case Filter::State::kAny:
      break;
    case Filter::State::kHeld:
      if (!it->rec.held) return false;
      break;
    case Filter::State::kInFlight:
      if (it->flying.empty()) return false;
      break;
    case Filter::State::kWaiting:
      if (it->rec.held || !it->flying.empty()) return false;
      break;
  }
  if (f.domain.empty() && f.rcpt.empty()) return true;
  for (size_t idx : it->pending) {
    const auto& a = it->rec.env.rcpts[idx];
    if ((f.domain.empty() || domain_of(a) == f.domain) &&
        (f.rcpt.empty() || address_key(a) == f.rcpt)) {
      return true;
    }
  }
  return false;
}

std::string OutboundQueue::address_key(std::string_view a) {
  if (a.size() >= 2 && a.front() == '<' && a.back() == '>') a = a.substr(1, a.size() - 2);
  const size_t at = a.rfind('@');
  if (at == std::string_view::npos) return std::string(a);
  return std::string(a.substr(0, at + 1)) + proto::ascii_lower(a.substr(at + 1));
}

std::string OutboundQueue::address_key(const proto::Address& a) {
  return a.is_null() ? std::string() : address_key(a.local + "@" + a.domain);
}

void OutboundQueue::view(const Item* it, MessageView* out) const {
  const auto& env = it->rec.env;
  out->id = env.id;
  out->sender = address_key(env.from).empty() ? "" : env.from.to_string();
  out->client = env.client;
  out->helo = env.helo;
  out->arrival_unix = env.arrival_unix;
  out->size = it->size;
  out->held = it->rec.held;
  out->attempts = it->rec.attempts;
  out->next_attempt_unix = it->scheduled || it->rec.held ? it->next_at : 0;
  for (size_t idx : it->mine) {
    RcptView r;
    r.address = env.rcpts[idx].to_string();
    const char st = state_of(it, idx);
    const bool bouncing = std::any_of(it->to_bounce.begin(), it->to_bounce.end(),
                                      [&](const auto& b) { return b.first == idx; });
    if (st == 'd') {
      r.state = "delivered";
    } else if (st == 'b' || bouncing) {
      r.state = "failed";
    } else if (st == 'x') {
      r.state = "deleted";
    } else if (contains(it->flying, idx)) {
      r.state = "in_flight";
    } else if (it->rec.held) {
      r.state = "held";
    } else {
      r.state = "waiting";
    }
    if (auto lr = it->last_reply.find(idx); lr != it->last_reply.end()) r.last_reply = lr->second;
    out->rcpts.push_back(std::move(r));
  }
}

std::string OutboundQueue::list(const Filter& f, const std::string& after, size_t limit,
                                size_t budget, std::vector<MessageView>* out) const {
  auto i = after.empty() ? by_id_.begin() : by_id_.upper_bound(after);
  std::string last;
  for (size_t looked = 0; i != by_id_.end() && out->size() < limit; ++i, ++looked) {
    if (looked == budget) return last;
    last = i->first;
    if (matches(i->second, f)) {
      out->emplace_back();
      view(i->second, &out->back());
    }
  }
  return "";
}

const storage::SpoolRecord* OutboundQueue::find(const std::string& id, MessageView* out) const {
  auto i = by_id_.find(id);
  if (i == by_id_.end()) return nullptr;
  view(i->second, out);
  return &i->second->rec;
}

std::string OutboundQueue::summarize(int64_t now_s, const std::string& after, size_t budget,
                                     Summary* out) const {
  auto i = after.empty() ? by_id_.begin() : by_id_.upper_bound(after);
  std::string last;
  std::vector<std::string> seen;
  for (size_t looked = 0; i != by_id_.end(); ++i, ++looked) {
    if (looked == budget) return last;
    last = i->first;
    const Item* it = i->second;
    ++out->messages;
    out->bytes += it->size;
    const State ms = !it->flying.empty() ? State::kInFlight
                     : it->rec.held      ? State::kHeld
                                         : State::kWaiting;
    ++out->state_messages[size_t(ms)];
    out->state_bytes[size_t(ms)] += it->size;
    const size_t bucket = age_bucket(now_s - it->rec.env.arrival_unix);
    seen.clear();
    for (size_t idx : it->pending) {
      std::string d = domain_of(it->rec.env.rcpts[idx]);
      DomainSummary& ds = out->domains[d];
      ++out->recipients;
      const State rs = contains(it->flying, idx) ? State::kInFlight
                       : it->rec.held            ? State::kHeld
                                                 : State::kWaiting;
      ++out->state_recipients[size_t(rs)];
      ++ds.recipients;
      ++ds.ages[bucket];
      if (it->rec.held) ++ds.held;
      if (contains(it->flying, idx)) ++ds.in_flight;
      if (auto lr = it->last_reply.find(idx);
          lr != it->last_reply.end() && it->last_reply_unix >= ds.last_error_unix) {
        ds.last_error = lr->second;
        ds.last_error_unix = it->last_reply_unix;
      }
      if (std::find(seen.begin(), seen.end(), d) == seen.end()) {
        ++ds.messages;
        ds.bytes += it->size;
        seen.push_back(std::move(d));
      }
    }
  }
  return "";
}

OutboundQueue::Change OutboundQueue::apply(Action a, const Selector& sel, int64_t now_s) {
  Change c;
  std::vector<Item*> items;
  if (!sel.ids.empty()) {
    for (const auto& id : sel.ids) {
      if (auto i = by_id_.find(id); i != by_id_.end()) {
        items.push_back(i->second);
        c.found.push_back(id);
      }
    }
  } else {
    for (const auto& [id, it] : by_id_) {
      const bool take = sel.all || (sel.by_sender && address_key(it->rec.env.from) == sel.sender) ||
                        (!sel.domain.empty() &&
                         std::any_of(it->pending.begin(), it->pending.end(), [&](size_t idx) {
                           return domain_of(it->rec.env.rcpts[idx]) == sel.domain;
                         }));
      if (take) items.push_back(it);
    }
  }
  for (Item* it : items) {
    const std::string& id = it->rec.env.id;
    switch (a) {
      case Action::kFlush:
        if (it->rec.held || it->pending.empty()) break;
        ++c.messages;
        if (it->scheduled) {
          unschedule(it);
          it->dns_retries = 0;
          schedule(it, now_s);
        }
        break;
      case Action::kHold:
        if (it->rec.held) break;
        ++c.messages;
        d_.spool->hold(it->rec, true);
        unschedule(it);  // next_at stays: release puts it back there
        log_line(id + ": held by the administrator");
        break;
      case Action::kRelease:
        if (!it->rec.held) break;
        ++c.messages;
        d_.spool->hold(it->rec, false);
        log_line(id + ": released by the administrator");
        if (!it->scheduled && it->due_in == 0 && it->out == 0 && !it->bouncing) {
          schedule(it, std::max(it->next_at, now_s));
        }
        break;
      case Action::kDelete:
      case Action::kBounce: {
        std::vector<size_t> take;
        for (size_t idx : it->pending) {
          if (sel.domain.empty() || domain_of(it->rec.env.rcpts[idx]) == sel.domain) {
            take.push_back(idx);
          }
        }
        if (take.empty()) break;
        ++c.messages;
        c.recipients += take.size();
        if (d_.counters) {
          (a == Action::kDelete ? d_.counters->deleted : d_.counters->bounced)
              .fetch_add(take.size(), std::memory_order_relaxed);
        }
        for (size_t idx : take) {
          erase_value(it->pending, idx);
          it->last_reply.erase(idx);
          const std::string who = id + ":" + log_recipient(it->rec.env, idx) + ": ";
          if (a == Action::kDelete) {
            d_.spool->recipient_deleted(it->rec, idx);
            mark(it, idx, 'x');
            log_line(who + "deleted by the administrator");
          } else {
            // Durable now; the DSN is queued as the message settles.
            d_.spool->recipient_done(it->rec, idx, true);
            mark(it, idx, 'b');
            it->to_bounce.push_back(
                {idx, proto::SmtpClient::RcptResult{
                          proto::Outcome::kPerm, "deleted from the queue by the administrator"}});
            log_line(who + "bounced by the administrator");
            if (d_.events) {
              Events::Detail d;
              d.attempt = it->rec.attempts;
              d.reply = "deleted from the queue by the administrator";
              d_.events->record(Events::Type::kAdminBounce, it->rec.env, idx, d, now_s);
            }
          }
        }
        if (it->pending.empty() || !it->to_bounce.empty()) {
          unschedule(it);
          settle(it, now_s);  // waits for parts in batches to come back
        }
        break;
      }
    }
  }
  return c;
}

}  // namespace ringmail::engine
