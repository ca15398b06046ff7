// Reading the event log (docs/events.md) from outside its shards: the
// segments of a directory by shard, and the complete lines of a segment
// from a byte offset. `ringmail events tail` and the webhook worker
// (engine/webhooks.h) both read through here.
//
// A line is complete once its newline is written; a segment's last bytes
// without one are a line still being written (the current segment) or a
// line torn by a power loss (a closed one), never returned. A closed
// segment is one with a newer segment of the same shard: the shard wrote
// its last line before it made the newer one.
//
// Plain blocking reads: for tools and worker threads, never a shard.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "proto/result.h"

namespace ringmail::storage {

struct EventSegment {
  uint64_t us = 0;     // its start, from the name
  uint32_t shard = 0;  // its shard, from the name
  std::string name;    // ev-<16 hex µs>-<shard>.jsonl
  std::string path;    // dir/name
};

// Every segment of `dir`, by shard, each shard's oldest first (name order,
// which is start order). A missing directory is an empty log.
[[nodiscard]] Result<std::map<uint32_t, std::vector<EventSegment>>> list_event_segments(
    const std::string& dir);

// Complete lines read from one segment.
struct EventLines {
  std::vector<std::string> lines;  // without their newlines
  std::vector<uint64_t> ends;      // the offset just past each line's newline
  uint64_t size = 0;               // the file's size when read
};

// Up to `lines_max` complete lines of `path` from byte `offset` on (which
// must be 0 or just past a newline). A file that does not exist (expired)
// is an error whose message starts with the path.
[[nodiscard]] Result<EventLines> read_event_lines(const std::string& path, uint64_t offset,
                                                  size_t lines_max = SIZE_MAX);

// The value of a line's "type" member (`"type":"Delivery"` as the event
// log writes it), or empty.
std::string_view event_line_type(std::string_view line);
// The value of a line's "id" member (its first), or empty.
std::string_view event_line_id(std::string_view line);

}  // namespace ringmail::storage
