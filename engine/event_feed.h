// What the event log's consumers (engine/webhooks.h, engine/amqp_publisher.h) share:
// a durable cursor over the log (storage/event_cursor.h), the batches
// read from it and the retry backoff.
//
// The cursor file `<events dir>/cursor-<name>` is moved only past a batch
// its consumer has delivered (acked()), and written at most every
// kCursorWriteMs and at stop, so every event is delivered at least once
// across restarts and kill -9 (duplicates are possible: the events
// delivered in the last 100 ms before a crash; receivers drop them by
// "id"). A feed without a cursor starts at the end of the log as it is
// then; one with an unreadable cursor sends the whole log again.
//
// Blocking reads and fsyncs: for worker threads, never a shard.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "proto/result.h"
#include "storage/event_cursor.h"
#include "storage/event_reader.h"

namespace ringmail::engine {

// How often a consumer with nothing to send looks for new lines.
constexpr int64_t kEventPollMs = 75;

int64_t steady_now_ms();

using EventListing = std::map<uint32_t, std::vector<storage::EventSegment>>;

class EventFeed {
 public:
  // `who` names the consumer in log lines ("webhook x", "amqp");
  // `types` the event types it wants (empty: every type).
  EventFeed(std::string who, std::string cursor_path, std::vector<std::string> types,
            size_t batch_size, uint32_t max_backoff_s);

  // Reads the cursor, or makes one at the end of `listing`.
  void open(const EventListing& listing);

  // Lists the segments of `dir` (once per `now`, shared by the feeds that
  // pass the same `*listing`); false and logged (once) when it cannot.
  bool list(const std::string& dir, int64_t now, EventListing* listing, int64_t* listed_ms);

  // Reads the next batch after the acknowledged position into `*lines`;
  // false when there is none (the cursor may still move past lines of
  // other types).
  bool next_batch(const EventListing& listing, std::vector<std::string>* lines);
  // The batch from next_batch() was delivered: the cursor moves past it.
  void acked(int64_t now);
  // Writes the cursor if it moved, at most every kCursorWriteMs unless `force`.
  void flush(int64_t now, bool force);

  // After a failed delivery: the seconds to wait (1, doubling up to
  // max_backoff_s). After a delivery: back to 1 s.
  uint32_t failed();
  void succeeded() { backoff_s_ = 0; }

  const std::string& who() const { return who_; }

 private:
  bool wants(std::string_view line) const;
  void write_cursor();
  void take(uint32_t shard, const std::vector<storage::EventSegment>& segs,
            storage::EventPosition* p, size_t want, std::vector<std::string>* lines);

  std::string who_;
  std::string cursor_path_;
  std::vector<std::string> types_;
  size_t batch_size_;
  uint32_t max_backoff_s_;
  uint32_t backoff_s_ = 0;
  storage::EventCursor acked_;  // acknowledged (durable unless dirty_)
  storage::EventCursor batch_end_;
  bool dirty_ = false;
  int64_t written_ms_ = 0;
  std::string read_error_;  // the last one logged, to log each once
};

}  // namespace ringmail::engine
