// [events.amqp] (issue 25, docs/events.md "AMQP"): one worker thread that
// publishes the event log to an AMQP 0-9-1 broker (RabbitMQ) through
// librabbitmq's blocking API: one persistent message per event
// (delivery_mode 2, content_type application/json, message_id the
// event's id) to `exchange` with `routing_key`, on a channel in confirm
// mode. A batch of up to batch_size messages is published, then the
// thread waits for the broker's basic.ack of each before the cursor
// (engine/event_feed.h, `<events dir>/cursor-amqp`) moves past it: the
// webhooks' at-least-once semantics. A failed batch (a connection
// error, a nack, no confirm within timeout_s) is published again after
// a backoff (1 s doubling to max_backoff_s) on a new connection.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "engine/event_feed.h"
#include "proto/result.h"

namespace ringmail::engine {

// What /metrics shows of the broker (engine/metrics.cc); written by the
// AMQP thread, read by any.
struct AmqpCounters {
  std::atomic<uint64_t> events_sent{0};  // events the broker confirmed
  std::atomic<uint64_t> failures{0};     // batches that failed
  std::atomic<bool> up{true};            // false from a failure until the next confirm
};

// The counters of the running publisher, or null without one. Set
// before the shards start, fixed afterwards.
const AmqpCounters* amqp_counters();

class AmqpPublisher {
 public:
  AmqpPublisher(config::AmqpConfig cfg, std::string events_dir);
  ~AmqpPublisher();  // stop() and join()
  AmqpPublisher(const AmqpPublisher&) = delete;
  AmqpPublisher& operator=(const AmqpPublisher&) = delete;

  // Reads the cursor (made at the log's end when new) and starts the
  // thread. Call once, before the shards start (it publishes
  // amqp_counters()).
  [[nodiscard]] Result<void> start();
  // Asks the thread to stop: the batch being confirmed finishes (within
  // timeout_s). Returns at once; any thread.
  void stop();
  // Waits for the thread after stop().
  void join();

 private:
  void run();
  bool connect(std::string* why);
  bool publish(const std::vector<std::string>& lines, std::string* why);
  void disconnect();
  void wait_ms(int64_t ms);

  config::AmqpConfig cfg_;
  std::string dir_;
  EventFeed feed_;
  void* conn_ = nullptr;   // amqp_connection_state_t
  uint64_t next_tag_ = 1;  // the delivery tag of the next publish
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace ringmail::engine
