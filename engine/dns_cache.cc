#include "engine/dns_cache.h"

#include <algorithm>
#include <utility>

#include "proto/ascii.h"

namespace ringmail::engine {

namespace {

DnsStatus status_of(const std::variant<TxtAnswer, MxAnswer, AddrAnswer>& a) {
  return std::visit([](const auto& x) { return x.status; }, a);
}

uint32_t ttl_of(const std::variant<TxtAnswer, MxAnswer, AddrAnswer>& a) {
  return std::visit([](const auto& x) { return x.ttl_s; }, a);
}

// Names compare without case and without the root's trailing dot.
std::string key_of(char kind, std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string key(1, kind);
  key += proto::ascii_lower(name);
  return key;
}

template <typename A>
std::function<void(const std::variant<TxtAnswer, MxAnswer, AddrAnswer>&)> typed(
    std::function<void(A)> done) {
  return [done = std::move(done)](const std::variant<TxtAnswer, MxAnswer, AddrAnswer>& a) {
    done(std::get<A>(a));
  };
}

}  // namespace

DnsCache::DnsCache(Resolver& upstream, const Clock& clock, DnsCacheLimits limits,
                   DnsCounters* counters)
    : upstream_(upstream), clock_(clock), limits_(limits), counters_(counters) {}

void DnsCache::txt(const std::string& name, std::function<void(TxtAnswer)> done) {
  lookup(Kind::kTxt, name, typed(std::move(done)));
}

void DnsCache::mx(const std::string& domain, std::function<void(MxAnswer)> done) {
  lookup(Kind::kMx, domain, typed(std::move(done)));
}

void DnsCache::addresses(const std::string& host, std::function<void(AddrAnswer)> done) {
  lookup(Kind::kAddr, host, typed(std::move(done)));
}

void DnsCache::ptr(const std::string& name, std::function<void(TxtAnswer)> done) {
  lookup(Kind::kPtr, name, typed(std::move(done)));
}

void DnsCache::lookup(Kind kind, const std::string& name, Waiter done) {
  counters_->lookups.fetch_add(1, std::memory_order_relaxed);
  const std::string key = key_of(static_cast<char>(kind), name);
  auto it = entries_.find(key);
  if (it != entries_.end() && it->second.pending) {
    counters_->merged.fetch_add(1, std::memory_order_relaxed);
    it->second.waiters.push_back(std::move(done));
    return;
  }
  if (it != entries_.end() && it->second.expires_ms > clock_.mono_ms()) {
    counters_->hits.fetch_add(1, std::memory_order_relaxed);
    Entry& e = it->second;
    lru_.splice(lru_.begin(), lru_, e.lru);  // most recently used
    ready_.push_back([done = std::move(done), a = e.answer] { done(a); });
    return;
  }
  if (it != entries_.end()) {  // expired: asked again
    lru_.erase(it->second.lru);
    entries_.erase(it);
  }
  Entry& e = entries_[key];
  e.pending = true;
  e.waiters.push_back(std::move(done));
  ask(kind, name, key);
}

void DnsCache::ask(Kind kind, const std::string& name, const std::string& key) {
  counters_->queries.fetch_add(1, std::memory_order_relaxed);
  // Through ready_: the answer may come inside the call (c-ares fails some
  // names without asking), and must not reach the asker there.
  auto back = [this, key](auto a) {
    ready_.push_back(
        [this, key, a = Answer(std::move(a))]() mutable { answered(key, std::move(a)); });
  };
  switch (kind) {
    case Kind::kTxt:
      upstream_.txt(name, back);
      break;
    case Kind::kPtr:
      upstream_.ptr(name, back);
      break;
    case Kind::kMx:
      upstream_.mx(name, back);
      break;
    case Kind::kAddr:
      upstream_.addresses(name, back);
      break;
  }
}

int64_t DnsCache::expiry(const Answer& a) const {
  const uint32_t ttl = std::clamp(ttl_of(a), limits_.ttl_min_s, limits_.ttl_max_s);
  return clock_.mono_ms() + int64_t{ttl} * 1000;
}

void DnsCache::answered(const std::string& key, Answer answer) {
  auto it = entries_.find(key);
  if (it == entries_.end() || !it->second.pending) return;
  std::vector<Waiter> waiters = std::move(it->second.waiters);
  const int64_t expires_ms = expiry(answer);
  const bool keep = status_of(answer) != DnsStatus::kTempFail && limits_.entries_max > 0 &&
                    expires_ms > clock_.mono_ms();
  if (status_of(answer) == DnsStatus::kTempFail) {
    counters_->temp_failures.fetch_add(1, std::memory_order_relaxed);
  }
  if (keep) {
    Entry& e = it->second;
    e.pending = false;
    e.waiters.clear();
    e.expires_ms = expires_ms;
    e.answer = answer;
    lru_.push_front(key);
    e.lru = lru_.begin();
    while (lru_.size() > limits_.entries_max) {
      entries_.erase(lru_.back());
      lru_.pop_back();
    }
  } else {
    entries_.erase(it);
  }
  for (auto& w : waiters) w(answer);
}

void DnsCache::run_ready() {
  // Swapped out first: what the callbacks make ready runs in the next round.
  std::vector<std::function<void()>> now;
  while (!ready_.empty()) {
    now.swap(ready_);
    for (auto& f : now) f();
    now.clear();
  }
}

void DnsCache::clear() {
  // Queries out stay: like the resolver's own lookups in flight, they end
  // on the servers they went to.
  for (const std::string& key : lru_) entries_.erase(key);
  lru_.clear();
}

}  // namespace ringmail::engine
