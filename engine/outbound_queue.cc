#include "engine/outbound_queue.h"

#include <algorithm>
#include <ctime>

#include "engine/log.h"

namespace ringmail::engine {

namespace {

std::string domain_of(const proto::Address& a) { return proto::ascii_lower(a.domain); }

}  // namespace

OutboundQueue::~OutboundQueue() { stop(); }

void OutboundQueue::add(storage::SpoolRecord rec, std::vector<size_t> indices, int64_t now_s) {
  auto it = std::make_unique<Item>();
  it->next_attempt = rec.next_attempt_unix > now_s ? rec.next_attempt_unix : now_s;
  it->rec = std::move(rec);
  if (held_bytes_ + it->rec.message.size() > d_.held_bytes_max) {
    std::string().swap(it->rec.message);  // read back when its attempt starts
  } else {
    it->held = it->rec.message.size();
    held_bytes_ += it->held;
  }
  it->pending = std::move(indices);
  items_.push_back(std::move(it));
  dirty_ = true;
}

int64_t OutboundQueue::backoff(uint32_t attempts) {
  uint64_t d = cfg_.retry_first_s;
  for (uint32_t i = 1; i < attempts && d < cfg_.retry_max_s; ++i) d *= 2;
  if (d > cfg_.retry_max_s) d = cfg_.retry_max_s;
  // +-10% so that messages that failed together do not retry together.
  jitter_state_ = jitter_state_ * 6364136223846793005ULL + 1442695040888963407ULL;
  const int64_t span = static_cast<int64_t>(d / 5) + 1;
  return static_cast<int64_t>(d) - span / 2 + static_cast<int64_t>((jitter_state_ >> 33) % static_cast<uint64_t>(span));
}

void OutboundQueue::tick(int64_t now_s) {
  const int64_t mono = monotonic_s();
  for (auto& s : sessions_) {
    if (!s->done) s->s->tick(mono);
  }
  dirty_ = true;  // retries may have come due
  service(now_s);
}

void OutboundQueue::service(int64_t now_s) {
  if (!dirty_) return;
  dirty_ = false;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    Session* s = it->get();
    if (s->done && s->s->finished()) {
      finish(s, now_s);
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
  if (stopping_) return;
  // Due items, grouped by destination domain.
  std::map<std::string, std::vector<Item*>> due;
  for (auto& up : items_) {
    Item* it = up.get();
    if (it->busy || it->bouncing || it->pending.empty() || it->next_attempt > now_s) continue;
    if (now_s - it->rec.env.arrival_unix >= static_cast<int64_t>(cfg_.expire_s)) {
      for (size_t idx : it->pending) {
        it->to_bounce.push_back(
            {idx, proto::SmtpClient::RcptResult{
                      proto::Outcome::kPerm,
                      "delivery failed for " + std::to_string(cfg_.expire_s / 86400) +
                          " days; the message expired"}});
      }
      it->pending.clear();
      settle(it, now_s);
      continue;
    }
    std::vector<std::string> seen;
    for (size_t idx : it->pending) {
      const std::string d = domain_of(it->rec.env.rcpts[idx]);
      if (std::find(seen.begin(), seen.end(), d) == seen.end()) {
        seen.push_back(d);
        due[d].push_back(it);
      }
    }
  }
  for (auto& [domain, items] : due) {
    size_t next = 0;
    while (next < items.size() && per_domain_[domain] < cfg_.connections_per_domain) {
      const size_t n = std::min<size_t>(cfg_.messages_per_connection, items.size() - next);
      start_session(domain, std::vector<Item*>(items.begin() + next, items.begin() + next + n), now_s);
      next += n;
    }
  }
  // Items are marked busy only once all their domains had their turn.
  for (auto& s : sessions_) {
    for (auto& p : s->parts) p->item->busy = true;
  }
  items_.remove_if([](const std::unique_ptr<Item>& it) {
    return it->pending.empty() && it->to_bounce.empty() && !it->busy && !it->bouncing;
  });
}

void OutboundQueue::start_session(const std::string& domain, std::vector<Item*> items, int64_t) {
  auto s = std::make_unique<Session>();
  s->domain = domain;
  std::vector<OutboundMessage*> msgs;
  for (Item* it : items) {
    if (it->rec.message.empty() && d_.spool->load(it->rec) < 0) {
      log_line("outbound id=" + it->rec.env.id + ": cannot read the message back from the spool");
      continue;
    }
    auto p = std::make_unique<Part>();
    p->item = it;
    p->msg.id = it->rec.env.id;
    p->msg.from = it->rec.env.from;
    p->msg.data = it->rec.message;
    p->msg.smtputf8 = it->rec.env.smtputf8;
    p->msg.body_8bit = it->rec.env.body_8bit;
    for (size_t idx : it->pending) {
      if (domain_of(it->rec.env.rcpts[idx]) != domain) continue;
      p->indices.push_back(idx);
      p->msg.rcpts.push_back(it->rec.env.rcpts[idx]);
    }
    msgs.push_back(&p->msg);
    s->parts.push_back(std::move(p));
  }
  if (msgs.empty()) return;
  OutboundSession::Params params;
  params.helo = d_.helo;
  params.self = d_.helo;
  params.port = cfg_.port;
  params.connect_timeout_s = cfg_.connect_timeout_s;
  params.command_timeout_s = cfg_.command_timeout_s;
  if (cfg_.starttls) params.tls = d_.tls;
  Session* raw = s.get();
  s->s = std::make_unique<OutboundSession>(*d_.backend, *d_.resolver, params, domain, msgs,
                                           [this, raw] {
                                             raw->done = true;
                                             dirty_ = true;
                                           });
  ++per_domain_[domain];
  sessions_.push_back(std::move(s));
  raw->s->start();
}

void OutboundQueue::finish(Session* s, int64_t now_s) {
  if (per_domain_[s->domain] > 0) --per_domain_[s->domain];
  std::vector<Item*> touched;
  for (auto& p : s->parts) {
    Item* it = p->item;
    if (std::find(touched.begin(), touched.end(), it) == touched.end()) touched.push_back(it);
    for (size_t k = 0; k < p->indices.size(); ++k) {
      const size_t idx = p->indices[k];
      const auto& res = p->msg.results[k];
      const std::string who = "outbound id=" + it->rec.env.id + " to=<" +
                              it->rec.env.rcpts[idx].to_string() + "> via " +
                              (s->s->remote_host().empty() ? "-" : s->s->remote_host()) +
                              (s->s->used_tls() ? (s->s->tls_verified() ? " tls=verified" : " tls=unverified") : "");
      switch (res.outcome) {
        case proto::Outcome::kOk:
          log_line(who + ": delivered: " + res.reply);
          d_.spool->recipient_done(it->rec, idx, false);
          it->pending.erase(std::remove(it->pending.begin(), it->pending.end(), idx), it->pending.end());
          break;
        case proto::Outcome::kPerm:
          log_line(who + ": failed permanently: " + res.reply);
          it->to_bounce.push_back({idx, res});
          it->bounce_host = s->s->remote_host();
          it->pending.erase(std::remove(it->pending.begin(), it->pending.end(), idx), it->pending.end());
          break;
        case proto::Outcome::kTemp:
          log_line(who + ": deferred: " + res.reply);
          break;
      }
    }
  }
  for (Item* it : touched) {
    // Busy until every session holding a part of it has finished.
    bool still = false;
    for (auto& other : sessions_) {
      if (other.get() == s) continue;
      for (auto& p : other->parts) still |= p->item == it;
    }
    it->busy = still;
    if (!still && !it->pending.empty()) {
      ++it->rec.attempts;
      it->next_attempt = now_s + backoff(it->rec.attempts);
      d_.spool->retry_at(it->rec, it->rec.attempts, it->next_attempt);
    }
    settle(it, now_s);
  }
}

void OutboundQueue::settle(Item* it, int64_t now_s) {
  if (!it->to_bounce.empty() && !it->bouncing) {
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
      if (it->rec.message.empty()) d_.spool->load(it->rec);
      Bounce b{it->rec, it->to_bounce, it->bounce_host};
      d_.bounce(std::move(b), [this, it, now_s](bool ok) {
        --bounces_in_flight_;
        it->bouncing = false;
        if (ok) {
          for (auto& [idx, res] : it->to_bounce) d_.spool->recipient_done(it->rec, idx, true);
          it->to_bounce.clear();
        } else {
          it->next_attempt = now_s + static_cast<int64_t>(cfg_.retry_first_s);  // try the DSN again
        }
        settle(it, now_s);
      });
      return;
    }
  }
  if (it->pending.empty() && it->to_bounce.empty() && !it->busy && !it->bouncing) {
    d_.spool->delivered(it->rec);  // every recipient is finished
    held_bytes_ -= it->held;
    it->held = 0;
    std::string().swap(it->rec.message);
  }
}

void OutboundQueue::stop() {
  stopping_ = true;
  for (auto& s : sessions_) {
    if (!s->done) s->s->abort();
  }
}

}  // namespace ringmail::engine
