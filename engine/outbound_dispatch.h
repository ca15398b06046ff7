// The connection side of outbound delivery. Every destination domain has
// one owner shard (owner_shard()); every shard's queue hands its due
// messages for that domain to the owner as batches (shard messages), and the
// owner's dispatcher makes all the connections to the domain: so the
// per-destination limits (connections, messages per connection, messages
// per minute) hold for the whole process, and one connection carries mail
// from every shard. When every message of a batch has its results the batch
// goes back to the shard that sent it, which records them in its spool.
//
// Sessions pull their next message from the domain's waiting list, so a
// connection is reused as long as mail is waiting (up to the
// messages-per-connection limit), and new connections open, up to the
// limit, while more is waiting. When a session could not reach the domain
// at all (DNS, every address refused), what else waits for the domain gets
// the same outcome instead of a connection attempt each.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/clock.h"
#include "engine/outbound.h"
#include "engine/outbound_queue.h"
#include "engine/resolver.h"

namespace ringmail::engine {

// The shard that owns the connections to `domain` (lower case).
uint32_t owner_shard(const std::string& domain, uint32_t shards);

class OutboundDispatcher {
 public:
  struct Deps {
    Backend* backend = nullptr;
    Resolver* resolver = nullptr;
    std::string helo;
    // Outbound TLS for MX delivery and routes with tls = "opportunistic" or
    // "required": an opportunistic context (it checks no certificate);
    // null: no STARTTLS. Routes with tls = "verify" get their own
    // verifying contexts (route_tls_).
    std::shared_ptr<const tls::TlsContext> tls;
    // Every message of the batch has its results: give it back.
    std::function<void(OutboundBatch*)> complete;
    const Clock* clock = &system_clock();       // rate limits' refill
    TlsClientCounters* tls_counters = nullptr;  // the sessions' handshakes (null: not counted)
  };
  OutboundDispatcher(Deps deps, config::OutboundConfig cfg);
  ~OutboundDispatcher();
  OutboundDispatcher(const OutboundDispatcher&) = delete;
  OutboundDispatcher& operator=(const OutboundDispatcher&) = delete;

  // A reload: sessions in progress keep what they started with.
  void reconfigure(config::OutboundConfig cfg);
  void submit(OutboundBatch* b);
  // About once a second: session deadlines, the rate limits' refill.
  void tick();
  // After any event: collects finished sessions, starts new ones.
  void service();
  // Shutdown: connections drop, every batch held (and any that still
  // arrives) completes at once with a temporary failure.
  void stop();
  bool idle() const { return sessions_.empty() && held_ == 0; }
  size_t sessions() const { return sessions_.size(); }
  uint64_t sessions_started() const { return sessions_started_; }

 private:
  struct Waiting {
    OutboundMessage* msg;
    OutboundBatch* batch;
  };
  struct Dest {
    std::deque<Waiting> waiting;
    uint32_t sessions = 0;
    double tokens = -1;  // rate limit; < 0: not started
    int64_t refill_ms = 0;
  };
  struct Session {
    std::string domain;
    std::unique_ptr<OutboundSession> s;
    std::vector<Waiting> taken;
    uint32_t given = 0;
    bool done = false;
  };

  void start_session(const std::string& domain, Dest& d);
  OutboundMessage* pull(Session* s);
  void result(Session* s, OutboundMessage* m);
  void finished(Session* s);
  void settle(const Waiting& w, proto::Outcome o, const std::string& why, bool dns_failed = false);
  void one_done(OutboundBatch* b);
  bool take_token(const std::string& domain, Dest& d);
  std::shared_ptr<const tls::TlsContext> context_for(const config::OutboundRoute* r);

  Deps d_;
  config::OutboundConfig cfg_;
  std::map<std::string, Dest> dests_;
  std::list<std::unique_ptr<Session>> sessions_;
  // Verifying contexts for tls = "verify" routes, by CA file ("": the
  // system's CA store).
  std::map<std::string, std::shared_ptr<const tls::TlsContext>> route_tls_;
  size_t held_ = 0;  // batches not yet complete
  uint64_t sessions_started_ = 0;
  bool stopping_ = false;
  bool dirty_ = false;
};

}  // namespace ringmail::engine
