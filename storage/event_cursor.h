// A reader's place in the event log (docs/events.md, "Webhooks"): for
// each shard, the segment and the byte offset up to which its lines were
// taken (acknowledged). Kept in a small text file, replaced whole
// (write_durable_file: temporary file, fsync, rename, fsync of the
// directory), so a crash leaves the old cursor or the new one:
//
//   ringmail-event-cursor 1
//   <shard> <segment name> <offset>      one line per shard
//
// A shard absent from a cursor is read from its oldest segment.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "proto/result.h"

namespace ringmail::storage {

struct EventPosition {
  std::string segment;  // a segment's name (ev-...jsonl)
  uint64_t offset = 0;  // 0 or just past a newline in it
  bool operator==(const EventPosition&) const = default;
};
using EventCursor = std::map<uint32_t, EventPosition>;  // by shard

std::string format_event_cursor(const EventCursor& c);
// The cursor in `text`, or an error naming the line that is wrong.
[[nodiscard]] Result<EventCursor> parse_event_cursor(std::string_view text);

// The cursor in file `path`; nullopt when there is none.
[[nodiscard]] Result<std::optional<EventCursor>> read_event_cursor(const std::string& path);
// Replaces `path` durably (mode 0600).
[[nodiscard]] Result<void> write_event_cursor(const std::string& path, const EventCursor& c);

}  // namespace ringmail::storage
