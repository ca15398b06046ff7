// One shard's outbound queue: the recipients in other domains of the
// messages the shard owns, grouped by destination domain at each attempt,
// delivered by OutboundSessions (several messages per connection, a limit
// of connections per domain), retried with exponential backoff and jitter,
// bounced (a DSN to the sender) when they fail permanently or expire.
// Per-recipient outcomes go to the spool (Spool::recipient_done), so a
// restart neither repeats an accepted recipient nor forgets the schedule.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/outbound.h"
#include "engine/resolver.h"
#include "storage/spool.h"

namespace ringmail::engine {

struct OutboundConfig {
  uint16_t port = 25;
  uint32_t connect_timeout_s = 30;
  uint32_t command_timeout_s = 300;
  uint32_t retry_first_s = 300;    // first retry after 5 minutes
  uint32_t retry_max_s = 3600;     // at most an hour between tries
  uint32_t expire_s = 5 * 86400;   // then bounce
  uint32_t connections_per_domain = 10;
  uint32_t messages_per_connection = 100;
  bool starttls = true;
};

class OutboundQueue {
 public:
  // What a bounce needs; the shard builds the DSN and queues it.
  struct Bounce {
    storage::SpoolRecord rec;  // the original (message loaded)
    std::vector<std::pair<size_t, proto::SmtpClient::RcptResult>> failed;  // index, why
    std::string remote_host;
  };
  struct Deps {
    Backend* backend = nullptr;
    Resolver* resolver = nullptr;
    storage::Spool* spool = nullptr;
    std::string helo;  // our host name (EHLO, and "self" for MX loops)
    std::shared_ptr<const tls::TlsContext> tls;
    // Queues a DSN; calls `done(true)` once it is durable (then the
    // recipients are marked bounced), `done(false)` to try again later.
    std::function<void(Bounce, std::function<void(bool)> done)> bounce;
    // Message bytes kept in memory for queued messages; beyond it they are
    // read back from the spool when their attempt starts.
    uint64_t held_bytes_max = uint64_t{16} << 20;
  };

  OutboundQueue(Deps deps, OutboundConfig cfg) : d_(std::move(deps)), cfg_(cfg) {}
  ~OutboundQueue();

  // Takes over the recipients `indices` of `rec` (the others are done or
  // not ours). `rec.message` may be empty: it is read back when needed.
  void add(storage::SpoolRecord rec, std::vector<size_t> indices, int64_t now_s);
  // About once a second: session deadlines, then service().
  void tick(int64_t now_s);
  // After any event: when something changed (a message added, a session
  // finished), collects finished sessions and starts due attempts at once,
  // so delivery does not wait for the next tick.
  void service(int64_t now_s);
  // Drops every connection; what was in flight is retried after a restart.
  void stop();
  bool idle() const { return sessions_.empty() && bounces_in_flight_ == 0; }
  size_t queued() const { return items_.size(); }
  size_t active_sessions() const { return sessions_.size(); }

 private:
  struct Item {
    storage::SpoolRecord rec;
    std::vector<size_t> pending;  // recipient indices still to deliver
    std::vector<std::pair<size_t, proto::SmtpClient::RcptResult>> to_bounce;
    std::string bounce_host;
    int64_t next_attempt = 0;
    bool busy = false;  // some recipients are in a session right now
    uint64_t held = 0;  // message bytes counted in held_bytes_
    bool bouncing = false;
  };
  struct Part {  // one item's recipients in one session
    Item* item;
    std::vector<size_t> indices;
    OutboundMessage msg;
  };
  struct Session {
    std::string domain;
    std::vector<std::unique_ptr<Part>> parts;
    std::unique_ptr<OutboundSession> s;
    bool done = false;
  };

  void start_session(const std::string& domain, std::vector<Item*> items, int64_t now_s);
  void finish(Session* s, int64_t now_s);
  void settle(Item* it, int64_t now_s);
  int64_t backoff(uint32_t attempts);

  Deps d_;
  OutboundConfig cfg_;
  std::list<std::unique_ptr<Item>> items_;
  std::list<std::unique_ptr<Session>> sessions_;
  std::map<std::string, uint32_t> per_domain_;  // sessions open per domain
  size_t bounces_in_flight_ = 0;
  uint64_t jitter_state_ = 0x9e3779b97f4a7c15ULL;
  bool stopping_ = false;
  bool dirty_ = false;
  uint64_t held_bytes_ = 0;
};

}  // namespace ringmail::engine
