// GET /metrics (issue 23): every shard's counters, gauges and histograms
// in Prometheus' text format (version 0.0.4), listed in README.md
// (Metrics). Counters are the shards' atomics (ShardStats), read
// from any thread; what only a shard's own thread may look at (its
// outbound queue, its spool) is gathered at each scrape by message
// (msg::Run), as admin work in slices (Shard::later), and merged on the
// scraped shard: no lock between shards, and a scrape of a queue of
// 100,000 messages costs each shard a few slices of admin time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/outbound_queue.h"

namespace ringmail::engine {

class Shard;

// What a scrape gathers on one shard's thread.
struct ShardSample {
  OutboundQueue::Summary queue;  // its outbound queue by state and destination
  uint64_t spool_bytes = 0;      // records in its spool segments
  uint64_t spool_segments = 0;
};

// One destination's share of the queue; "other" sums those left out.
struct DestinationRow {
  std::string destination;
  uint64_t messages = 0, recipients = 0, bytes = 0;
};
// The `n` destinations with the most recipients waiting (ties by name),
// largest first, then an "other" row summing the rest when there is any
// rest: at most n + 1 rows, whose recipients add up to the queue's.
std::vector<DestinationRow> top_destinations(
    const std::map<std::string, OutboundQueue::DomainSummary>& domains, size_t n);

// Answers a scrape on `origin`'s thread: gathers a ShardSample from every
// shard, then calls `done` with the text (on `origin`'s thread, turns
// later). ringmail_up is `up`.
void scrape_metrics(Shard& origin, bool up, std::function<void(std::string)> done);

// The text for `shards` (index order) with their `samples` (same order).
std::string metrics_text(const std::vector<Shard*>& shards, bool up,
                         const std::vector<ShardSample>& samples, size_t top_n);

}  // namespace ringmail::engine
