// A shard's local delivery: the messages it committed with recipients in
// its local domains. At most delivery_concurrency run at a time, and a new
// one waits up to delivery_defer_ms while the shard is acknowledging mail,
// so a burst keeps the disk for its 250s. Pipe aliases, MDA and LMTP
// domains run on worker threads (run_pipe, lmtp_deliver); mailboxes are
// written by storage::MaildirDelivery and made durable in batches. A
// failure is retried on the timer wheel; a permanent one bounces. Remote
// recipients go to the outbound queue, at once when a message has no local
// one, else after its local deliveries.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_set>
#include <vector>

#include "engine/blocking_pool.h"
#include "engine/timer_wheel.h"
#include "storage/maildir.h"
#include "storage/spool.h"

namespace ringmail::engine {

class LocalDelivery;
class Shard;
struct PipeOp;

struct DeliveryJob : storage::MaildirDelivery::Job {
  struct Retry : TimerEntry {
    DeliveryJob* job = nullptr;
  };
  LocalDelivery* owner = nullptr;
  Retry retry;
  uint32_t attempts = 0;
  int64_t queued_ms = 0;  // monotonic; when it first entered the delivery queue
};

class LocalDelivery {
 public:
  // `shard` gives the configuration, spool, clock, timer wheel, counters,
  // outbound queue and DSNs; it outlives this object.
  explicit LocalDelivery(Shard& shard);
  ~LocalDelivery();  // jobs still queued or waiting stay in the spool
  LocalDelivery(const LocalDelivery&) = delete;
  LocalDelivery& operator=(const LocalDelivery&) = delete;

  // A committed (or recovered) message; owns `job` from here.
  void deliver(DeliveryJob* job);
  // Once per loop turn: drains finished pipe commands, starts deferred
  // deliveries, and starts the Maildir syncfs of a batch when the spool is
  // idle (acknowledging mail goes first) or the batch waited long enough.
  void service();
  // How soon the loop should come back (ms): a batch waits for its sync,
  // or a command is running.
  int wait_ms() const;
  // No delivery in progress (queued ones may wait: they stay in the spool).
  bool idle() const { return inflight_ == 0; }
  size_t queued() const { return queue_.size(); }
  size_t retrying() const { return retrying_.size(); }

 private:
  static void on_delivered(storage::MaildirDelivery::Job* job, const proto::DeliveryResult& result);
  void start_deliveries();
  void retry_later(DeliveryJob* job);
  // A job's recipients that are pipe aliases (or of an MDA or LMTP domain)
  // go to their commands before the rest goes to the Maildirs; false when
  // it has none.
  bool start_pipes(DeliveryJob* job);
  void after_pipes(PipeOp* op);

  Shard& shard_;
  storage::MaildirDelivery maildir_;
  // Pipe aliases run on their own workers, so a slow command never holds
  // up the spool's syncs; the loop drains them while any is running.
  std::unique_ptr<BlockingPool> pipe_pool_;
  size_t pipes_inflight_ = 0;
  std::deque<DeliveryJob*> queue_;
  uint64_t queued_bytes_ = 0;       // message bytes held by queue_
  int64_t sync_wait_since_ms_ = 0;  // monotonic ms; 0 = none waiting
  bool deferred_ = false;           // start_deliveries() left jobs for later
  uint64_t inflight_ = 0;
  std::unordered_set<DeliveryJob*> retrying_;  // waiting in the wheel
};

}  // namespace ringmail::engine
