// One shard's outbound queue: the recipients in other domains of the
// messages the shard owns, grouped by destination domain at each attempt
// into batches that go to the domain's owner shard (its dispatcher makes
// the connections: engine/outbound_dispatch.h), retried with exponential
// backoff and jitter, bounced (a DSN to the sender) when they fail
// permanently or expire.
// Per-recipient outcomes go to the spool (Spool::recipient_done), so a
// restart neither repeats an accepted recipient nor forgets the schedule.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "engine/clock.h"
#include "engine/events.h"
#include "engine/histogram.h"
#include "engine/outbound.h"
#include "engine/resolver.h"
#include "storage/spool.h"

namespace ringmail::engine {

class OutboundQueue {
 public:
  // What a bounce needs; the shard builds the DSN and queues it.
  struct Bounce {
    storage::SpoolRecord rec;  // the original (message loaded)
    std::vector<std::pair<size_t, proto::SmtpClient::RcptResult>> failed;  // index, why
    std::string remote_host;
    bool delayed = false;  // a delay warning: `failed` are still being tried
    int64_t retry_until_unix = 0;
  };
  // Recipient outcomes, for /metrics (written by the queue's shard only).
  struct Counters {
    // Attempts per recipient, by result (delivered, deferred, failed).
    std::atomic<uint64_t> delivered{0}, deferred{0}, failed{0};
    // Recipients finished other than delivered: bounced (a 5xx, expiry, or
    // an administrator's bounce) or deleted by an administrator.
    std::atomic<uint64_t> bounced{0}, deleted{0};
    // Messages that left the queue: every recipient finished.
    std::atomic<uint64_t> finished{0};
    // Gauges: messages in the queue now, and the earliest arrival among
    // them (unix seconds; 0 when empty). For /api/status.
    std::atomic<uint64_t> queued{0};
    std::atomic<int64_t> oldest_arrival_unix{0};
    // The deferred and failed attempts above by cause (proto::Cause).
    std::atomic<uint64_t> deferred_by[proto::kCauses] = {};
    std::atomic<uint64_t> failed_by[proto::kCauses] = {};
    // Seconds from a message's arrival to each recipient's delivery.
    Histogram queue_s{1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 5 * 24 * 3600};
    // Seconds from a message's batch going out to its results coming back
    // (one delivery attempt: connection, MX lookup and SMTP dialog).
    Histogram attempt_s{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
  };
  struct Deps {
    Counters* counters = nullptr;
    Backend* backend = nullptr;
    Resolver* resolver = nullptr;
    storage::Spool* spool = nullptr;
    std::string helo;  // our host name (EHLO, and "self" for MX loops)
    std::shared_ptr<const tls::TlsContext> tls;
    // Queues a DSN; calls `done(true)` once it is durable (then the
    // recipients are marked bounced), `done(false)` to try again later.
    std::function<void(Bounce, std::function<void(bool)> done)> bounce;
    // Hands a batch to the owner of its domain (OutboundDispatcher::submit
    // there); it comes back through batch_done().
    std::function<void(OutboundBatch*)> dispatch;
    uint32_t shard = 0;  // this queue's shard (OutboundBatch::home)
    // Message bytes kept in memory for queued messages; beyond it they are
    // read back from the spool when their attempt starts.
    uint64_t held_bytes_max = uint64_t{16} << 20;
    // The MAIL FROM to send for a message's envelope sender (SRS for
    // forwarded mail); null: the sender as it is.
    std::function<proto::Address(const proto::Address&)> envelope_sender;
    // The VERP return path of recipient `rcpt` of `env` (a sender that is
    // not <>), which then goes in a transaction of its own (proto/verp.h);
    // a null address while [events] verp is off.
    std::function<proto::Address(const proto::Envelope& env, size_t rcpt)> verp_sender;
    const Clock* clock = &system_clock();  // wall seconds, as service() and tick() get
    // The shard's event stream, or null when [events] is off.
    Events* events = nullptr;
    // Each recipient that bounced (a permanent failure from its server).
    std::function<void(const proto::Envelope& env, size_t rcpt, const std::string& reply)>
        hard_bounce;
  };

  OutboundQueue(Deps deps, config::OutboundConfig cfg) : d_(std::move(deps)), cfg_(cfg) {}
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
  // A batch is back from its owner with every message's results.
  void batch_done(OutboundBatch* b);
  // No more batches go out; what is out comes back (the dispatchers stop
  // too) and what was not delivered is retried after a restart.
  void stop();
  void reconfigure(config::OutboundConfig cfg) { cfg_ = std::move(cfg); }
  bool idle() const { return batches_.empty() && bounces_in_flight_ == 0; }

  // The administrator's view and controls (engine/admin_api.cc,
  // docs/admin-api.md). Addresses are compared as "local@domain" with the
  // domain in lower case ("" the null sender).
  // How the filters compare addresses: "local@domain" with the domain in
  // lower case and any angle brackets dropped ("" for the null sender).
  static std::string address_key(std::string_view address);
  static std::string address_key(const proto::Address& a);
  struct Filter {
    std::string domain;  // a recipient still to deliver there
    std::string rcpt;    // that recipient, still to deliver
    bool by_sender = false;
    std::string sender;
    int64_t arrived_before = 0;  // 0: any arrival
    enum class State : uint8_t { kAny, kWaiting, kInFlight, kHeld } state = State::kAny;
  };
  struct RcptView {
    std::string address;
    const char* state;  // waiting, in_flight, held, delivered, failed, deleted
    std::string last_reply;
  };
  struct MessageView {
    std::string id, sender, client, helo;
    int64_t arrival_unix = 0;
    uint64_t size = 0;
    bool held = false;
    uint32_t attempts = 0;
    int64_t next_attempt_unix = 0;  // 0: due now or in an attempt
    std::vector<RcptView> rcpts;
  };
  // Messages with ids after `after`, in id order, that match, appended to
  // `out` until it has `limit`; looks at no more than `budget` messages.
  // Returns the id to go on from when the budget ran out first, else "".
  std::string list(const Filter& f, const std::string& after, size_t limit, size_t budget,
                   std::vector<MessageView>* out) const;
  // One message (null: not in this queue).
  const storage::SpoolRecord* find(const std::string& id, MessageView* out) const;

  static constexpr size_t kAgeBuckets = 7;  // qshape's: 5, 10, 20, 40, 80, 160 minutes, more
  struct DomainSummary {
    uint64_t messages = 0, recipients = 0, bytes = 0, held = 0, in_flight = 0;
    uint64_t ages[kAgeBuckets] = {};
    std::string last_error;
    int64_t last_error_unix = 0;
  };
  // By state, as the listing shows them: a recipient in a batch now is
  // in flight, else held with its message, else waiting; a message is in
  // flight with any recipient in flight, else held or waiting.
  enum class State : uint8_t { kWaiting, kInFlight, kHeld };
  static constexpr size_t kStates = 3;
  struct Summary {
    uint64_t messages = 0, recipients = 0, bytes = 0;
    std::map<std::string, DomainSummary> domains;
    uint64_t state_messages[kStates] = {}, state_recipients[kStates] = {},
             state_bytes[kStates] = {};
  };
  static size_t age_bucket(int64_t age_s);
  // Adds the messages with ids after `after` to `out`, at most `budget`
  // of them; returns the id to go on from, or "" when all are in.
  std::string summarize(int64_t now_s, const std::string& after, size_t budget, Summary* out) const;

  // Which messages an administrative action takes.
  struct Selector {
    std::vector<std::string> ids;
    std::string domain;  // messages with recipients there (delete and
                         // bounce: only those recipients)
    bool by_sender = false;
    std::string sender;
    bool all = false;
  };
  enum class Action : uint8_t { kFlush, kHold, kRelease, kDelete, kBounce };
  struct Change {
    uint64_t messages = 0, recipients = 0;
    std::vector<std::string> found;  // of the selector's ids
  };
  // Applies `a` now; the spool lines it writes are durable after the next
  // Spool::sync().
  Change apply(Action a, const Selector& sel, int64_t now_s);
  // Destinations no connection goes to until the given unix second.
  void set_suspended(std::map<std::string, int64_t> until) {
    suspended_ = std::move(until);
    dirty_ = true;
  }

 private:
  // A message a DSN needs, read back from the spool; a failure is logged
  // and the DSN goes without the original's header.
  void load_for_dsn(storage::SpoolRecord& rec);
  // A message's life here: scheduled (in schedule_, waiting for its next
  // attempt) -> due (in due_ of each domain it has recipients in) -> out
  // (a part in a batch per domain) -> back: delivered, bounced, or
  // scheduled again with a backoff. Only items whose time has come are
  // looked at, so a large queue costs nothing until it is due.
  struct Item {
    storage::SpoolRecord rec;
    std::vector<size_t> pending;  // recipient indices still to deliver
    std::vector<std::pair<size_t, proto::SmtpClient::RcptResult>> to_bounce;
    std::string bounce_host;
    std::map<size_t, std::string> last_reply;  // why each pending recipient was deferred
    uint32_t due_in = 0;                       // due_ lists it is in
    uint32_t out = 0;                          // parts out in batches
    bool scheduled = false;                    // in schedule_
    bool attempted = false;                    // a part went out since it was last scheduled
    uint64_t held = 0;                         // message bytes counted in held_bytes_
    bool bouncing = false;
    // This attempt's deferrals: for a temporary DNS failure only (then it
    // is tried again in seconds, dns_retries times so far), or not.
    bool dns_deferred = false;
    bool other_deferred = false;
    uint32_t dns_retries = 0;
    std::list<std::unique_ptr<Item>>::iterator self;
    // For the administrator: the recipients this queue took, those in a
    // batch now, the message's size, its next attempt (while scheduled, or
    // parked while held) and when the last deferral came.
    std::vector<size_t> mine;
    std::vector<size_t> flying;
    uint64_t size = 0;
    int64_t next_at = 0;
    int64_t last_reply_unix = 0;
    std::multimap<int64_t, Item*>::iterator sched;
  };
  struct Part {  // one item's recipients in one session
    Item* item;
    std::vector<size_t> indices;
    OutboundMessage msg;
  };
  struct Batch {
    OutboundBatch b;
    std::vector<std::unique_ptr<Part>> parts;
    bool done = false;
    std::chrono::steady_clock::time_point sent;  // for the attempt's duration
  };

  Batch* send_batch(const std::string& domain, std::deque<Item*>& due, size_t n, int64_t now_s);
  void finish(Batch* b, int64_t now_s);
  void schedule(Item* it, int64_t when);
  void make_due(Item* it, int64_t now_s);
  void warn_delayed(Item* it, int64_t now_s);
  void settle(Item* it, int64_t now_s);
  int64_t backoff(uint32_t attempts);
  // Seconds until the next try after a temporary DNS failure: 5, 10, 20...
  // while that is shorter than retry_first_s; 0 past it (then the usual
  // backoff: the DNS trouble has lasted).
  int64_t dns_retry(uint32_t retries) const;

  // Recipient `idx` finished ('d', 'b', 'x'), for the listing.
  static void mark(Item* it, size_t idx, char state);
  static char state_of(const Item* it, size_t idx);
  bool matches(const Item* it, const Filter& f) const;
  void view(const Item* it, MessageView* out) const;
  bool suspended(const std::string& domain, int64_t now_s) const;
  // Takes the item out of schedule_ (it stays where else it is).
  void unschedule(Item* it);

  Deps d_;
  config::OutboundConfig cfg_;
  std::list<std::unique_ptr<Item>> items_;
  std::map<std::string, Item*> by_id_;  // items_ by message id (listing, actions)
  std::map<std::string, int64_t> suspended_;
  std::multiset<int64_t> arrivals_;  // of items_ (the gauges' oldest)
  void update_gauges();
  std::multimap<int64_t, Item*> schedule_;
  std::map<std::string, std::deque<Item*>> due_;
  std::list<std::unique_ptr<Batch>> batches_;
  std::map<std::string, size_t> out_per_domain_;  // messages out in batches
  size_t bounces_in_flight_ = 0;
  uint64_t jitter_state_ = 0x9e3779b97f4a7c15ULL;
  bool stopping_ = false;
  bool dirty_ = false;
  uint64_t held_bytes_ = 0;
};

}  // namespace ringmail::engine
