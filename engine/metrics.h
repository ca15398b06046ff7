// GET /metrics (issue 23): every shard's counters, gauges and histograms
// in Prometheus' text format (version 0.0.4), listed in README.md
// (Metrics). They are the shards' atomics (ShardStats), written by their
// own shard and read here from any thread: no lock, no message.
#pragma once

#include <string>
#include <vector>

namespace ringmail::engine {

class Shard;

// The text for `shards` (index order); ringmail_up is `up`.
std::string metrics_text(const std::vector<Shard*>& shards, bool up);

}  // namespace ringmail::engine
