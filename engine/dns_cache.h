// The shard's DNS cache: every lookup the engine makes (SPF and DMARC TXT,
// DKIM keys, PTR, MX and addresses for delivery) goes through it. Owned by
// one shard and used on its thread only, so it takes no locks.
//
// - An answer is kept for its TTL, clamped to [ttl_min_s, ttl_max_s]; a
//   negative one (no such domain, no such record) for its SOA's negative
//   TTL (RFC 2308), clamped the same way. Temporary failures are not kept.
// - At most `entries_max` answers; the least recently used goes first.
// - Questions asked again while the first is out wait for its answer: one
//   query to the server however many sessions ask.
// - Answers are handed out from the shard's loop (run_ready()), never
//   inside the call that asked: callers count their lookups first.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "engine/clock.h"
#include "engine/resolver.h"

namespace ringmail::engine {

struct DnsCacheLimits {
  uint32_t ttl_min_s = 0;
  uint32_t ttl_max_s = 86400;
  size_t entries_max = 10000;
};

// Counted per shard, read by /metrics from any thread.
struct DnsCounters {
  std::atomic<uint64_t> lookups{0};        // questions the engine asked
  std::atomic<uint64_t> hits{0};           // answered from the cache
  std::atomic<uint64_t> merged{0};         // joined a query already out
  std::atomic<uint64_t> queries{0};        // sent to the DNS servers
  std::atomic<uint64_t> temp_failures{0};  // timeouts, SERVFAIL, ...: not kept
};

class DnsCache final : public Resolver {
 public:
  DnsCache(Resolver& upstream, const Clock& clock, DnsCacheLimits limits, DnsCounters* counters);

  void txt(const std::string& name, std::function<void(TxtAnswer)> done) override;
  void mx(const std::string& domain, std::function<void(MxAnswer)> done) override;
  void addresses(const std::string& host, std::function<void(AddrAnswer)> done) override;
  void ptr(const std::string& name, std::function<void(TxtAnswer)> done) override;
  void tick() override { upstream_.tick(); }

  // Hands out the answers that are ready, including those that become
  // ready meanwhile (a chain of lookups answered from the cache runs to its
  // end). The shard calls it once per loop turn.
  void run_ready();
  bool has_ready() const { return !ready_.empty(); }
  // Forgets every answer kept (new servers); queries out stay.
  void clear();
  void set_limits(DnsCacheLimits limits) { limits_ = limits; }
  // Answers kept (not counting queries out).
  size_t size() const { return lru_.size(); }

 private:
  enum class Kind : char { kTxt = 't', kMx = 'm', kAddr = 'a', kPtr = 'p' };
  using Answer = std::variant<TxtAnswer, MxAnswer, AddrAnswer>;
  using Waiter = std::function<void(const Answer&)>;
  struct Entry {
    Answer answer;
    int64_t expires_ms = 0;
    bool pending = false;  // a query is out; `waiters` wait for it
    std::vector<Waiter> waiters;
    std::list<std::string>::iterator lru;  // valid when !pending
  };

  void lookup(Kind kind, const std::string& name, Waiter done);
  void ask(Kind kind, const std::string& name, const std::string& key);
  void answered(const std::string& key, Answer answer);
  int64_t expiry(const Answer& a) const;

  Resolver& upstream_;
  const Clock& clock_;
  DnsCacheLimits limits_;
  DnsCounters* counters_;
  std::unordered_map<std::string, Entry> entries_;
  std::list<std::string> lru_;  // kept answers, most recently used first
  std::vector<std::function<void()>> ready_;
};

}  // namespace ringmail::engine
