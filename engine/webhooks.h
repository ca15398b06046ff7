// Webhooks (issue 25, docs/events.md "Webhooks"): one worker thread that
// POSTs the event log to every [[events.webhook]] endpoint through
// libcurl's multi interface.
//
// Per endpoint: a durable cursor (storage/event_cursor.h) in
// `<events dir>/cursor-<name>`, moved only after a 2xx and written at
// most every 100 ms (and at stop), so every event is delivered at least
// once across restarts and kill -9 (duplicates are possible: the events
// answered in the last 100 ms before a crash; receivers drop them by
// "id"). One batch is in
// flight per endpoint and a failed one is sent again, the same, after a
// backoff (1 s doubling to max_backoff_s), so the events of a recipient
// (one shard's stream) arrive in order. An endpoint without a cursor
// starts at the end of the log as it is then.
//
// The thread reads the segment files with blocking reads and writes the
// cursor files with fsync: it never touches a shard.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "proto/result.h"

namespace ringmail::engine {

// What /metrics shows of one endpoint (engine/metrics.cc); written by
// the webhook thread, read by any.
struct WebhookCounters {
  std::string name;
  std::atomic<uint64_t> events_sent{0};  // events in batches answered 2xx
  std::atomic<uint64_t> failures{0};     // POSTs that failed (non-2xx, error, timeout)
  std::atomic<bool> up{true};            // false from a failure until the next 2xx
};

// The counters of the running webhooks, in configuration order; empty
// without any. Set before the shards start, fixed afterwards.
const std::vector<std::unique_ptr<WebhookCounters>>& webhook_counters();

// `X-Ringmail-Signature`'s value for `body`: "sha256=" and the hex of
// HMAC-SHA256(secret, body).
std::string webhook_signature(std::string_view secret, std::string_view body);

class Webhooks {
 public:
  // `hooks` not empty; `events_dir` the event log's directory.
  Webhooks(std::vector<config::WebhookConfig> hooks, std::string events_dir);
  ~Webhooks();  // stop() and join()
  Webhooks(const Webhooks&) = delete;
  Webhooks& operator=(const Webhooks&) = delete;

  // Reads the cursors (a new endpoint's is made at the log's end), sets
  // up libcurl and starts the thread. Call once, before the shards start
  // (it publishes webhook_counters()).
  [[nodiscard]] Result<void> start();
  // Asks the thread to stop: no new POSTs; the ones in flight finish
  // (each within its timeout_s). Returns at once; any thread.
  void stop();
  // Waits for the thread after stop().
  void join();

  struct Endpoint;

 private:
  void run();

  std::vector<config::WebhookConfig> hooks_;
  std::string dir_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  void* multi_ = nullptr;  // CURLM*
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace ringmail::engine
