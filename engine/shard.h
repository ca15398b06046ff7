// A shard: one thread, one event loop backend (one io_uring ring), its own
// listening sockets (SO_REUSEPORT), connections, spool writer and delivery.
// Nothing here is shared with other shards except the immutable Config
// snapshot; shards and the main thread talk through inboxes (SPSC queues)
// plus a doorbell (MSG_RING between io_uring shards, eventfd otherwise).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <iterator>
#include <latch>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "config/config.h"
#include "engine/auth.h"
#include "engine/backend.h"
#include "engine/client_limits.h"
#include "engine/clock.h"
#include "engine/dkim.h"
#include "engine/dns_cache.h"
#include "engine/events.h"
#include "engine/histogram.h"
#include "engine/local_delivery.h"
#include "engine/outbound_dispatch.h"
#include "engine/outbound_queue.h"
#include "engine/recipient_policy.h"
#include "engine/resolver.h"
#include "engine/spsc.h"
#include "engine/suppression.h"
#include "engine/timer_wheel.h"
#include "engine/unsubscribe.h"
#include "proto/http.h"
#include "proto/smtp_server.h"
#include "proto/srs.h"
#include "storage/domains.h"
#include "storage/file_io.h"
#include "storage/spool.h"
#include "storage/unique_clock.h"
#include "tls/cert_store.h"

namespace ringmail::engine {

class Connection;
class HttpConnection;
class InjectRates;
class Shard;

// What the main thread and other shards send a shard, through its inboxes.
namespace msg {
struct Stop {};  // finish open sessions and deliveries in flight, then leave the loop
// SIGHUP: the new configuration and what was read again with it.
struct Reload {
  std::shared_ptr<const config::Config> config;
  std::shared_ptr<const InjectRates> inject_rates;
  std::shared_ptr<const DkimKeys> dkim;             // null: keep the running keys
  std::shared_ptr<const storage::Domains> domains;  // null: keep the running ones
  std::shared_ptr<const proto::srs::Config> srs;    // null: SRS off
  std::shared_ptr<const SecretKeys> unsubscribe;    // null: no [[unsubscribe]]
  std::shared_ptr<const SecretKeys> verp;           // null: [events] verp off
};
struct Certs {  // for new TLS sessions; sessions in progress keep theirs
  std::shared_ptr<const tls::CertStore> certs;
};
struct Domains {  // users and aliases changed on disk
  std::shared_ptr<const storage::Domains> domains;
};
struct BatchToOwner {  // to the shard that owns the batch's destination
  OutboundBatch* batch = nullptr;
};
struct BatchDone {  // back to the shard the batch came from
  OutboundBatch* batch = nullptr;
};
// Runs on the receiving shard's thread (tools and tests that need to look
// at or act on a shard from outside).
struct Run {
  std::function<void(Shard&)> fn;
};
}  // namespace msg

using ShardMessage = std::variant<msg::Stop, msg::Reload, msg::Certs, msg::Domains,
                                  msg::BatchToOwner, msg::BatchDone, msg::Run>;

// Counters read by other threads (tests, status); written only by the shard.
struct ShardStats {
  DnsCounters dns;
  AuthCounters auth;
  std::atomic<uint64_t> accepted_connections{0};
  std::atomic<uint64_t> open_connections{0};  // SMTP sessions now
  std::atomic<uint64_t> tls_handshakes{0};
  std::atomic<uint64_t> http_requests{0};
  // POST /api/inject/v1: answers by status (kInjectStatuses), and the
  // recipients of 200 answers, queued or failed.
  static constexpr int kInjectStatuses[] = {200, 400, 401, 403, 404, 405, 413, 415, 429, 503};
  static constexpr size_t kInjectStatusCount = std::size(kInjectStatuses);
  std::atomic<uint64_t> inject_answers[kInjectStatusCount + 1] = {};  // the last: any other
  std::atomic<uint64_t> inject_queued{0};
  // Recipients refused for the suppression list (RCPT and injection).
  std::atomic<uint64_t> suppressed_recipients{0};
  // The event log's lines written, and events it could not write.
  std::atomic<uint64_t> events_written{0};
  std::atomic<uint64_t> events_failed{0};
  std::atomic<uint64_t> inject_failed{0};
  void count_inject_answer(int status) {
    size_t i = 0;
    while (i < kInjectStatusCount && kInjectStatuses[i] != status) ++i;
    inject_answers[i].fetch_add(1, std::memory_order_relaxed);
  }
  // Loop time: waiting for events, and working on them (microseconds).
  std::atomic<uint64_t> loop_wait_us{0};
  std::atomic<uint64_t> loop_busy_us{0};
  // Loop turns by how long they worked: up to 1 ms, 10 ms, 100 ms, longer
  // (seconds; the admin API's slices keep turns short).
  Histogram loop_turn_s{0.001, 0.01, 0.1};
  std::atomic<uint64_t> loop_turn_max_us{0};  // the longest turn so far
  OutboundQueue::Counters outbound;           // remote recipients
  std::atomic<uint64_t> local_deferred{0};    // local deliveries to retry
  std::atomic<uint64_t> local_queued{0};      // gauge: local deliveries waiting or running
  std::atomic<uint64_t> local_failed{0};      // local recipients failed for good
  std::atomic<uint64_t> dsns_queued{0};       // bounces and delay notices
  std::atomic<uint64_t> dkim_signatures{0};   // messages signed
  std::atomic<uint64_t> messages_queued{0};
  // Bytes of records in the shard's spool segments, as of its last loop
  // turn (the injection API's high-water mark sums every shard's).
  std::atomic<uint64_t> spool_bytes{0};
  std::atomic<uint64_t> messages_delivered{0};
  std::atomic<uint64_t> commit_failures{0};
  // Seconds from a message's end of DATA (its final ".") to the 250: its
  // checks, signing and the spool's group commit.
  Histogram data_to_reply_s{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
  // Messages each fdatasync of the spool carried (group commit).
  Histogram fsync_batch_messages{1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
  // AUTH exchanges that ended with 235, and with 535 (or a lock-out).
  std::atomic<uint64_t> auth_success{0}, auth_failure{0};
  TlsClientCounters tls_client;  // outbound handshakes (this shard's sessions)
};

// A listening socket given to a shard, which owns the descriptor.
struct ListenSocket {
  int fd = -1;
  // A copy of a socket systemd passed (socket activation) that every shard
  // and systemd itself hold: at a stop the shard withdraws its accept
  // instead of shutting the socket down, so it keeps listening and clients
  // wait in its backlog for the next start. Otherwise the socket is this
  // shard's alone (SO_REUSEPORT), and shutting it down refuses new clients
  // at once.
  bool shared = false;
};

class Shard final : public proto::SmtpHost {
 public:
  // `listen[i]` serves `cfg->listeners[i]`, and one more after them the
  // admin API's UNIX socket (the first shard). The
  // other shards are given later (set_peers), before run().
  // `clock`: where the shard reads the time (the system's; tests give a
  // ManualClock); it outlives the shard.
  Shard(uint32_t index, std::shared_ptr<const config::Config> cfg, std::vector<ListenSocket> listen,
        config::BackendKind backend, const Clock& clock = system_clock());
  ~Shard() override;

  // Every shard, this one included, in index order: one inbox per sender
  // (each shard, then the main thread last).
  void set_peers(std::vector<Shard*> peers);

  // Thread body. Counts `ready` down once listening (or failed: see error()).
  void run(std::latch& ready);
  const std::string& error() const { return error_; }
  config::BackendKind backend_kind() const { return backend_kind_; }
  // mono_ms() of the loop's last turn (it turns at least once a second):
  // the watchdog's sign that the shard is alive.
  int64_t last_turn_ms() const { return last_turn_ms_.load(std::memory_order_relaxed); }

  // Every shard, this one included (for the metrics of all of them).
  const std::vector<Shard*>& peers() const { return peers_; }
  // Set once a stop began: listeners closed, sessions finishing.
  bool stopping() const { return stopping_; }

  // Before run(), on the main thread: the certificates new TLS sessions use
  // (null or empty: no STARTTLS, and implicit TLS ports close at once).
  void set_certs(std::shared_ptr<const tls::CertStore> certs) { certs_ = std::move(certs); }
  // Before run(): the DKIM signing keys (replaced on reload).
  void set_dkim(std::shared_ptr<const DkimKeys> keys) { dkim_ = std::move(keys); }
  // Before run(): the domains, users and aliases (replaced on reload; without
  // them, the configuration's local_domains take any mailbox name).
  void set_domains(std::shared_ptr<const storage::Domains> d) { policy_.set_domains(std::move(d)); }
  // Before run(): SRS for forwarded mail (null: senders are sent as they are).
  void set_srs(std::shared_ptr<const proto::srs::Config> s) { policy_.set_srs(std::move(s)); }
  // Before run(): the keys of one-click unsubscribe tokens (null: no
  // [[unsubscribe]] rule).
  void set_unsubscribe(std::shared_ptr<const SecretKeys> k) { unsubscribe_ = std::move(k); }
  const SecretKeys* unsubscribe_keys() const { return unsubscribe_.get(); }
  std::shared_ptr<const SecretKeys> unsubscribe_keys_ptr() const { return unsubscribe_; }
  // Before run(): the VERP key (null: [events] verp off).
  void set_verp(std::shared_ptr<const SecretKeys> k) { verp_ = std::move(k); }
  std::shared_ptr<const SecretKeys> verp_keys_ptr() const { return verp_; }
  // Local domains, users, aliases and SRS (shard thread).
  const RecipientPolicy& policy() const { return policy_; }
  // Before open_spool(): the process's table of AUTH failures, shared by
  // every shard (null: this shard counts alone).
  void set_auth_failures(std::shared_ptr<AuthFailures> f) { auth_failures_ = std::move(f); }
  // Before run(): the process's count of connections per client, shared by
  // every shard (null: this shard counts alone).
  void set_connections_per_client(std::shared_ptr<ConnectionsPerClient> c) {
    per_client_ = std::move(c);
  }
  // Before run(), on the main thread: creates the shard's spool segment.
  int open_spool();
  // Before run(): takes over a recovered spool segment and delivers its
  // records once running.
  void adopt(storage::Spool::RecoveredSegment&& seg);

  // Main thread only.
  void post_from_main(ShardMessage m);
  // From another shard's thread only (`from` is the caller's shard).
  void post_from_shard(Shard& from, ShardMessage m);

  uint32_t index() const { return index_; }
  const ShardStats& stats() const { return stats_; }

  // What the shard's connections use (shard thread only).
  Backend& backend() { return *backend_; }
  TimerWheel& wheel() { return wheel_; }
  const config::Config& config() const { return *cfg_; }
  // The same, kept alive by the caller (work that outlives a reload).
  std::shared_ptr<const config::Config> config_ptr() const { return cfg_; }
  // Every lookup goes through the shard's DNS cache; null before run()
  // (and when c-ares could not start).
  Resolver* resolver() { return dns_.get(); }
  const DkimKeys* dkim_keys() const { return dkim_.get(); }
  std::shared_ptr<const DkimKeys> dkim_keys_ptr() const { return dkim_; }
  // Before run(): the injection API's token budgets, shared by every shard
  // (replaced on reload).
  void set_inject_rates(std::shared_ptr<const InjectRates> r) { inject_rates_ = std::move(r); }
  const InjectRates* inject_rates() const { return inject_rates_.get(); }
  // Injection requests being built or stored: a stop waits for them, so
  // every request that was taken gets its answer.
  void inject_started() { ++injecting_; }
  void inject_finished() { --injecting_; }
  Authenticator& authenticator() { return *auth_; }
  ShardStats& counters() { return stats_; }
  storage::FileIo& file_io() { return file_io_; }
  const tls::CertStore* certs() const { return certs_.get(); }
  // Appends a message to the spool (the shard is acknowledging mail now:
  // deliveries wait a little, see delivery_defer_ms).
  void commit(storage::Spool::Commit* c);
  // The same for a batch stored all or none (the injection API).
  void commit_batch(storage::Spool::Batch* b);
  // Deferred DKIM body hashing (see queue_hashing below).
  void queue_hashing(DkimBodyHasher* h);
  void forget_hashing(DkimBodyHasher* h);
  // A message just committed to the spool goes to delivery (the shard
  // owns `job` from here).
  void deliver(DeliveryJob* job);
  // Queues a DSN for `b` (see OutboundQueue::Deps::bounce).
  void queue_dsn(OutboundQueue::Bounce b, std::function<void(bool)> done);
  storage::Spool& spool() { return *spool_; }
  // The event stream (docs/events.md), or null when [events] is off.
  Events* events() { return events_.get(); }
  OutboundQueue* outbound() { return outbound_.get(); }  // null: not running
  // Mail was acknowledged in the last kAcceptingWindowMs (monotonic ms).
  bool accepting_mail(int64_t now_ms) const {
    return now_ms - last_commit_ms_ < kAcceptingWindowMs;
  }
  // The shard's clock: monotonic milliseconds, and wall-clock seconds.
  int64_t mono_ms() const { return clock_.mono_ms(); }
  // A listener's address for the log ("the admin socket" past the
  // configured ones).
  std::string listener_name(size_t listener) const;
  int64_t clock_s() const { return clock_.wall_s(); }
  // Admin work (the admin API's slices): runs `fn` in a later loop turn.
  // While the shard is acknowledging mail, such work gets at most 20 ms
  // of each second (kAdminShareUs); an idle shard runs it at once. What
  // it costs accepting is several times the slices' own time (sending the
  // answers, memory): with 20 ms, an operator paging through 100,000
  // messages in a loop left 0.91 of the accept rate (bench/admin_queue.py).
  void later(std::function<void()> fn) { later_.push_back(std::move(fn)); }
  static constexpr uint64_t kAdminShareUs = 20'000;  // per second
  // Destinations suspended by the administrator: until when, and why
  // (every shard has the same; the admin socket's shard writes the file).
  struct Suspension {
    int64_t until_unix = 0;
    std::string reason;
  };
  using Suspensions = std::map<std::string, Suspension>;
  void set_suspensions(std::shared_ptr<const Suspensions> s);
  const Suspensions& suspensions() const { return *suspensions_; }
  // The suppression list (engine/suppression.h): the set read at start,
  // given before run().
  void set_suppressions(std::shared_ptr<const storage::SuppressionSet> base) {
    suppressions_ = std::make_unique<Suppressions>(std::move(base));
  }
  const Suppressions* suppressions() const { return suppressions_.get(); }
  // Whether mail from `from` to `rcpt` is suppressed; when it is, a
  // Suppressed event for the transaction `env`.
  bool refuse_suppressed(const proto::Envelope& env, const proto::Address& rcpt);
  // Adds or removes an entry: on the first shard, appended to the file
  // and, once durable, applied on every shard; then `done(0 or -errno)`
  // runs on this shard.
  void change_suppression(storage::SuppressionChange c, std::function<void(int)> done);
  // A recipient bounced: added to the list when the reply's class is one
  // of [suppression] bounce_classes.
  // `status`: a DSN's Status, the enhanced code when the reply has none.
  void suppress_after_bounce(const proto::Envelope& env, size_t rcpt, const std::string& reply,
                             std::string_view status = {});
  // A message just queued: when it is for one of [events]
  // report_addresses and is a DSN or an ARF report, OOB or Feedback
  // events, and suppressions (failed recipients of suppressing classes;
  // complained-of recipients for the sender's domain).
  void read_report(const proto::Envelope& env, std::string_view message);
  // A connection that has closed: freed at the end of the loop turn.
  void retire(Connection* c);
  void retire(HttpConnection* c) { dead_http_.push_back(c); }

  // proto::SmtpHost
  bool is_local_domain(std::string_view domain) const override;
  std::string check_local_recipient(const proto::Address& a) const override;
  std::string check_relay_recipient(const proto::Envelope& env, const proto::Address& a) override;
  std::string_view primary_domain() const override;
  std::string new_message_id() override;
  int64_t now_unix() const override { return clock_s(); }
  int64_t started_unix() const { return started_unix_; }

 private:
  struct AcceptC final : Completion {
    Shard* shard = nullptr;
    size_t listener = 0;
    bool armed = false;
    // Re-arms the accept a second after running out of descriptors.
    struct Rearm : TimerEntry {
      AcceptC* accept = nullptr;
    };
    Rearm rearm;
    void complete(const Event& ev) override { shard->on_accept(listener, ev); }
  };
  struct DoorbellC final : Completion {
    Shard* shard = nullptr;
    void complete(const Event&) override { shard->drain_inboxes(); }
  };
  // Wraps the backend's fsync for storage's FileIo seam.
  class RingFileIo final : public storage::PosixFileIo {
   public:
    explicit RingFileIo(Shard& s) : shard_(s) {}
    void submit(storage::BlockingOp* op) override;

   private:
    struct FsyncC final : Completion {
      storage::BlockingOp* op = nullptr;
      FsyncC* next_free = nullptr;
      RingFileIo* io = nullptr;
      void complete(const Event& ev) override;
    };
    Shard& shard_;
    FsyncC* free_ = nullptr;
    std::vector<std::unique_ptr<FsyncC>> all_;
  };

  void arm_accept(size_t listener);
  void on_accept(size_t listener, const Event& ev);
  void drain_inboxes();
  void handle(ShardMessage&& m);
  void reload(msg::Reload&& m);
  void begin_stop();
  void tick();
  void give_back_memory();
  // A commit this recent means the shard is acknowledging mail right now.
  static constexpr int64_t kAcceptingWindowMs = 100;

  const uint32_t index_;
  const Clock& clock_;
  const int64_t started_unix_;  // when the shard was made (the daemon's start)
  // listen_ past these many are the admin socket's.
  const size_t listeners_configured_;
  std::shared_ptr<const config::Config> cfg_;
  std::vector<ListenSocket> listen_;
  RecipientPolicy policy_;
  std::vector<std::unique_ptr<AcceptC>> accept_cs_;
  config::BackendKind backend_kind_;
  std::unique_ptr<Backend> backend_;
  std::string error_;
  std::vector<Shard*> peers_;
  // inboxes_[i]: from shard i; inboxes_[peers_.size()]: from the main thread.
  std::vector<std::unique_ptr<SpscQueue<ShardMessage>>> inboxes_;
  DoorbellC doorbell_;

  std::shared_ptr<const tls::CertStore> certs_;
  std::shared_ptr<const DkimKeys> dkim_;
  std::shared_ptr<const SecretKeys> unsubscribe_;
  std::shared_ptr<const SecretKeys> verp_;
  std::shared_ptr<AuthFailures> auth_failures_;
  std::shared_ptr<ConnectionsPerClient> per_client_;
  size_t dsns_signing_ = 0;  // DSNs whose DKIM signature is being made (stop waits)
  size_t injecting_ = 0;     // injection requests in flight (stop waits)
  std::shared_ptr<const InjectRates> inject_rates_;
  // An open descriptor kept in reserve: when accept fails for want of
  // descriptors, it is closed so that waiting clients can be accepted and
  // told 421 instead of hanging (refuse_out_of_descriptors()).
  int reserve_fd_ = -1;
  // Refusals of one second, logged as one line.
  int64_t refused_log_s_ = 0;
  uint64_t refused_unlogged_ = 0;
  // "NOQUEUE: refused (connection limit: <why>) client=<peer>: <reply>",
  // one line a second at most.
  void note_refusal(const std::string& peer, std::string_view reply, const std::string& why);
  size_t refuse_out_of_descriptors(size_t listener);
  std::unique_ptr<Authenticator> auth_;
  RingFileIo file_io_{*this};
  std::unique_ptr<storage::Spool> spool_;
  std::unique_ptr<Events> events_;
  std::unique_ptr<LocalDelivery> local_;  // made with the spool
  // Outbound delivery: created in run() (they need the backend), reset
  // before it goes.
  std::unique_ptr<AresResolver> resolver_;
  std::unique_ptr<DnsCache> dns_;  // in front of resolver_
  std::unique_ptr<OutboundQueue> outbound_;
  // The connections to the domains this shard owns (owner_shard()).
  std::unique_ptr<OutboundDispatcher> dispatcher_;
  // Set once this shard sends no more batches (stopping); a shard leaves
  // its loop only when every shard has set it and nothing is out.
  std::atomic<bool> outbound_quiesced_{false};
  // Set once run() has its backend (or gave up): peers wait for it before
  // their loops start, so no message goes to a ring that is not there yet.
  std::atomic<bool> started_{false};
  std::atomic<int64_t> last_turn_ms_{0};
  void dispatch_batch(OutboundBatch* b);
  // DKIM body hashers with canonical bytes waiting (deferred hashing): at
  // the end of the loop turn their whole blocks are hashed together, in the
  // lanes when enough of them have some (kDkimBatchMin).
  void flush_hashing();
  std::vector<DkimBodyHasher*> hashing_;
  void batch_complete(OutboundBatch* b);
  bool peers_quiesced() const;
  std::vector<DeliveryJob*> preloaded_;  // recovered, delivered once running
  int64_t last_commit_ms_ = 0;           // monotonic ms of the last spool commit started

  std::unordered_map<Connection*, std::unique_ptr<Connection>> conns_;
  size_t conns_peak_ = 0;  // most sessions at once since memory was last given back
  std::vector<Connection*> dead_;
  std::unordered_map<HttpConnection*, std::unique_ptr<HttpConnection>> http_conns_;
  std::vector<HttpConnection*> dead_http_;
  TimerWheel wheel_;
  std::vector<std::function<void()>> later_;
  int64_t admin_window_ms_ = 0;   // the current second (mono_ms) of admin work
  uint64_t admin_window_us_ = 0;  // admin work done in it
  // Milliseconds until admin work may run: 0 now, -1 none waiting.
  int admin_wait_ms();
  void run_admin_work();
  std::shared_ptr<const Suspensions> suspensions_ = std::make_shared<Suspensions>();
  std::unique_ptr<Suppressions> suppressions_;
  std::unique_ptr<SuppressionWriter> suppression_writer_;  // the first shard's
  int64_t now_s_ = 0;
  storage::UniqueClock id_clock_;
  bool stopping_ = false;
  int64_t stop_deadline_s_ = 0;
  ShardStats stats_;
};

}  // namespace ringmail::engine
