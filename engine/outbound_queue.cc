#include "engine/outbound_queue.h"

#include <algorithm>
#include <cstring>
#include <ctime>

#include "engine/log.h"
#include "engine/outbound_dispatch.h"

namespace ringmail::engine {

namespace {

std::string domain_of(const proto::Address& a) { return proto::ascii_lower(a.domain); }

}  // namespace

OutboundQueue::~OutboundQueue() { stop(); }

void OutboundQueue::load_for_dsn(storage::SpoolRecord& rec) {
  if (const int r = d_.spool->load(rec); r < 0) {
    log_line("outbound id=" + rec.env.id + ": cannot read the message back from the spool (" +
                 std::strerror(-r) + "): its DSN goes without the original header",
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
  it->pending = std::move(indices);
  items_.push_back(std::move(up));
  it->self = std::prev(items_.end());
  arrivals_.insert(it->rec.env.arrival_unix);
  update_gauges();
  schedule(it, it->rec.next_attempt_unix > now_s ? it->rec.next_attempt_unix : now_s);
}

void OutboundQueue::schedule(Item* it, int64_t when) {
  it->scheduled = true;
  it->attempted = false;
  schedule_.emplace(when, it);
  dirty_ = true;
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
    for (size_t idx : it->pending) {
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
  std::vector<Item*> unreadable;
  for (size_t k = 0; k < n; ++k) {
    Item* it = due.front();
    due.pop_front();
    --it->due_in;
    it->attempted = true;
    if (it->rec.message.empty() && d_.spool->load(it->rec) < 0) {
      // Counts as a failed attempt: tried again after a backoff.
      log_line("outbound id=" + it->rec.env.id + ": cannot read the message back from the spool",
               LogLevel::kError);
      unreadable.push_back(it);
      continue;
    }
    auto p = std::make_unique<Part>();
    p->item = it;
    p->msg.id = it->rec.env.id;
    p->msg.from = d_.envelope_sender ? d_.envelope_sender(it->rec.env.from) : it->rec.env.from;
    p->msg.data = it->rec.message;
    p->msg.smtputf8 = it->rec.env.smtputf8;
    p->msg.body_8bit = it->rec.env.body_8bit;
    for (size_t idx : it->pending) {
      if (domain_of(it->rec.env.rcpts[idx]) != domain) continue;
      p->indices.push_back(idx);
      p->msg.rcpts.push_back(it->rec.env.rcpts[idx]);
    }
    ++it->out;
    b->b.msgs.push_back(&p->msg);
    b->parts.push_back(std::move(p));
  }
  for (Item* it : unreadable) settle(it, now_s);
  if (b->parts.empty()) return nullptr;
  out_per_domain_[domain] += b->parts.size();
  batches_.push_back(std::move(b));
  return batches_.back().get();
}

void OutboundQueue::finish(Batch* s, int64_t now_s) {
  auto od = out_per_domain_.find(s->b.domain);
  if (od != out_per_domain_.end()) {
    od->second -= std::min(od->second, s->parts.size());
    if (od->second == 0) out_per_domain_.erase(od);
  }
  for (auto& p : s->parts) {
    Item* it = p->item;
    for (size_t k = 0; k < p->indices.size(); ++k) {
      const size_t idx = p->indices[k];
      const auto& res = p->msg.results[k];
      const std::string who =
          "outbound id=" + it->rec.env.id + " to=<" + it->rec.env.rcpts[idx].to_string() +
          "> via " + (p->msg.remote_host.empty() ? "-" : p->msg.remote_host) +
          (p->msg.used_tls ? (p->msg.tls_verified ? " tls=verified" : " tls=unverified") : "");
      switch (res.outcome) {
        case proto::Outcome::kOk:
          log_line(who + ": delivered: " + res.reply);
          if (d_.counters) d_.counters->delivered.fetch_add(1, std::memory_order_relaxed);
          d_.spool->recipient_done(it->rec, idx, false);
          it->pending.erase(std::remove(it->pending.begin(), it->pending.end(), idx),
                            it->pending.end());
          break;
        case proto::Outcome::kPerm:
          log_line(who + ": failed permanently: " + res.reply);
          if (d_.counters) d_.counters->failed.fetch_add(1, std::memory_order_relaxed);
          it->to_bounce.push_back({idx, res});
          it->bounce_host = p->msg.remote_host;
          it->pending.erase(std::remove(it->pending.begin(), it->pending.end(), idx),
                            it->pending.end());
          break;
        case proto::Outcome::kTemp:
          log_line(who + ": deferred: " + res.reply);
          if (d_.counters) d_.counters->deferred.fetch_add(1, std::memory_order_relaxed);
          it->last_reply[idx] = res.reply;
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
        log_line("outbound id=" + it->rec.env.id + " to=<" + it->rec.env.rcpts[idx].to_string() +
                 ">: no DSN for the null sender");
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
        log_line("outbound id=" + it->rec.env.id + ": DNS failed for now, not the destination: " +
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
  held_bytes_ -= it->held;
  if (auto a = arrivals_.find(it->rec.env.arrival_unix); a != arrivals_.end()) arrivals_.erase(a);
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
  log_line("outbound id=" + it->rec.env.id + ": delayed for " +
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

}  // namespace ringmail::engine
